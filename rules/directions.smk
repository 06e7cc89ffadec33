rule directions:
    input:
        model=subject_manifest(),
        endpoint=lambda wc: [model_manifest(AXES[wc.axis].endpoint)] if AXES[wc.axis].endpoint else [],
        partner=lambda wc: [f"{RUN}/directions/{AXES[wc.axis].partner}"] if AXES[wc.axis].partner else [],
    output:
        directory(f"{RUN}/directions/{{axis}}"),
    params:
        code=code("directions.py"),
        axis=lambda wc: AXES[wc.axis].__dict__,
        normalization=config["landscape"]["normalization"],
        exclude=config["landscape"]["exclude_patterns"],
        dtype=config["landscape"]["dtype"],
        shard_mb=config["landscape"]["shard_size_mb"],
    threads: config["landscape"]["threads"]
    log:
        f"{RUN}/logs/directions/{{axis}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/directions.py"
