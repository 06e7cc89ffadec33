# One rule per landscape (landscapes differ in their grids): a perturbed-checkpoint artifact per point.
# System prompt variants reuse their main landscape's artifacts.
for ls in LANDSCAPES.values():
    if ls.points_from:
        continue

    rule:
        name:
            f"materialize_{rule_name(ls.name)}"
        input:
            model=subject_manifest(),
            directions=axis_dirs(ls.name),
        output:
            [f"{RUN}/points/{ls.name}/{point}.safetensors" for point in points_of(ls.name)],
        params:
            coords=list(ls.coords),
            form=config["landscape"]["materialize"],
        log:
            f"{RUN}/logs/materialize/{ls.name}.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/materialize.py"
