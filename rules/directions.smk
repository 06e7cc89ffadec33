rule directions:
    input:
        model=subject_manifest(),
    output:
        f"{RUN}/directions/{{direction}}.safetensors",
    params:
        seed=lambda wc: config["landscape"]["seed"] + DIRECTIONS.index(wc.direction),
        normalization=config["landscape"]["normalization"],
        exclude=config["landscape"]["exclude_patterns"],
        dtype=config["landscape"]["dtype"],
    log:
        f"{RUN}/logs/directions/{{direction}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/directions.py"
