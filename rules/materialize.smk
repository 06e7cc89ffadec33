rule materialize:
    input:
        model=subject_manifest(),
        direction=f"{RUN}/directions/{{direction}}.safetensors",
    output:
        expand(f"{RUN}/points/{{{{direction}}}}/{{point}}.safetensors", point=POINTS),
    params:
        coefficients=[point_coefficient(p) for p in POINTS],
        form=config["landscape"]["materialize"],
    log:
        f"{RUN}/logs/materialize/{{direction}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/materialize.py"
