rule figures:
    input:
        asr=f"{RUN}/tables/asr.csv",
        summary=f"{RUN}/summary.json",
        headline=f"{RUN}/tables/visage_summary.csv",
        directions=axis_dirs(MAIN[0]) if len(MAIN) == 1 else [],
        projections=expand(f"{RUN}/projections/{{model}}.json", model=PROJECTED),
    output:
        [
            report(path, caption="../report/landscape.rst", category="Safety landscape", subcategory="Figures") if path.endswith(".png") else path
            for path in figure_targets()
        ],
    params:
        code=code("figures.py"),
        setup=SETUP,
        style=config["figures"],
        axes=LANDSCAPES[MAIN[0]].axes,
        landscape=MAIN[0],
        two_d=is_2d(config),
        adaptive=ADAPTIVE,
    log:
        f"{RUN}/logs/figures.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/figures.py"


rule finetune_figures:
    input:
        asr=f"{RUN}/tables/finetune_asr.csv",
        landscape=f"{RUN}/tables/finetune_landscape_asr.csv",
        summary=f"{RUN}/finetune/summary.json",
        projections=[f"{FT}/projections/{name}.json" for name in FT_SAVED] if FT_PLANE else [],
    output:
        [
            report(f"{RUN}/figures/{name}.{ext}", caption=f"../report/{name}.rst", category="Finetuning") if ext == "png" else f"{RUN}/figures/{name}.{ext}"
            for name in ["finetune_asr_by_epoch", "finetune_interpolation"] + (["finetune_trajectories"] if FT_PLANE else [])
            for ext in ("png", "pdf")
        ],
    params:
        code=code("finetune_figures.py"),
        style=config["figures"],
        run=config["run"],
        judge=next(iter(JUDGES)),
        saved=FT_SAVED,
    log:
        f"{RUN}/logs/finetune_figures.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/finetune_figures.py"


rule system_prompt_figures:
    input:
        asr=f"{RUN}/tables/system_prompts_asr.csv",
        table2=f"{RUN}/tables/system_prompts.csv",
    output:
        report(f"{RUN}/figures/system_prompts.png", caption="../report/system_prompts.rst", category="System prompts"),
        f"{RUN}/figures/system_prompts.pdf",
    params:
        code=code("system_prompt_figures.py"),
        setup=SETUP,
        style=config["figures"],
        run=config["run"],
        judge=next(iter(JUDGES)),
    log:
        f"{RUN}/logs/system_prompt_figures.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/system_prompt_figures.py"


rule capability_figures:
    input:
        f"{RUN}/tables/capability.csv",
    output:
        report(f"{RUN}/figures/capability.png", caption="../report/capability.rst", category="Capability"),
        f"{RUN}/figures/capability.pdf",
    params:
        code=code("capability_figures.py"),
        setup=SETUP,
        style=config["figures"],
        run=config["run"],
        judge=next(iter(JUDGES)),
    log:
        f"{RUN}/logs/capability_figures.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/capability_figures.py"
