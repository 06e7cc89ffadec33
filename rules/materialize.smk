rule materialize:
    input:
        model=subject_manifest(),
        directions=lambda wc: axis_dirs(wc.landscape),
    output:
        expand(f"{RUN}/points/{{{{landscape}}}}/{{point}}.safetensors", point=POINTS),
    params:
        coords=COORDS,
        form=config["landscape"]["materialize"],
    log:
        f"{RUN}/logs/materialize/{{landscape}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/materialize.py"
