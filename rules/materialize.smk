# Materialize stage: the perturbed-checkpoint artifact of every grid point of one landscape, one
# safetensors file per point in the landscape's folder. System prompt variants answer at their main
# landscape's artifacts and have none of their own.


rule materialize:
    input:
        model=subject_manifest(),
        directions=lambda wc: axis_dirs(wc.landscape),
    output:
        directory(f"{RUN}/points/{{landscape}}"),
    params:
        code=code("materialize.py"),
        points=lambda wc: {point.name: list(point.coords) for point in LANDSCAPES[wc.landscape].points},
        form=config["landscape"]["materialize"],
    log:
        f"{RUN}/logs/materialize/{{landscape}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/materialize.py"
