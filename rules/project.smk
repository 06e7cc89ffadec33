rule project:
    input:
        model=subject_manifest(),
        checkpoint=lambda wc: manifest(wc.model),
        directions=axis_dirs(MAIN[0]),
    output:
        f"{RUN}/projections/{{model}}.json",
    params:
        code=code("project.py"),
        checkpoint=lambda wc: wc.model,
        landscape=MAIN[0],
    log:
        f"{RUN}/logs/project/{{model}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/project.py"


rule project_checkpoint:
    input:
        model=subject_manifest(),
        checkpoint=lambda wc: model_manifest(wc.checkpoint),
        directions=axis_dirs(FT_PLANE) if FT_PLANE else [],
    output:
        f"{FT}/projections/{{checkpoint}}.json",
    params:
        code=code("project.py"),
        checkpoint=lambda wc: wc.checkpoint,
        landscape=FT_PLANE,
    log:
        f"{FT}/logs/project/{{checkpoint}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/project.py"
