rule visage:
    input:
        expand(f"{RUN}/judgments/{{judge}}/{{landscape}}/{{point}}.jsonl", judge=JUDGES, landscape=MAIN, point=points_of(MAIN[0])),
    output:
        asr=report(f"{RUN}/tables/asr.csv", caption="../report/asr.rst", category="Safety landscape", subcategory="Tables"),
        visage=report(f"{RUN}/tables/visage.csv", caption="../report/visage.rst", category="Safety landscape", subcategory="Tables"),
        agreement=report(f"{RUN}/tables/agreement.csv", caption="../report/agreement.rst", category="Safety landscape", subcategory="Tables"),
        headline=f"{RUN}/tables/visage_summary.csv",
        asr_parquet=f"{RUN}/tables/asr.parquet",
        visage_parquet=f"{RUN}/tables/visage.parquet",
        agreement_parquet=f"{RUN}/tables/agreement.parquet",
        summary=f"{RUN}/summary.json",
    params:
        coords=list(LANDSCAPES[MAIN[0]].coords),
        landscapes=MAIN,
        judges=list(JUDGES),
        visage=config["visage"],
        run=config["run"],
        kind=config["landscape"]["kind"],
    log:
        f"{RUN}/logs/visage.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/visage.py"


rule finetune_tables:
    input:
        checkpoints=[f"{FT}/judgments/{judge}/{checkpoint}/{evalset}.jsonl" for judge in JUDGES for checkpoint, evalset in FT_EVALUATIONS],
        lines=landscape_judgments(FT_LINES),
        plane=landscape_judgments([FT_PLANE]) if FT_PLANE else [],
        pairs=[f"{FT}/{dataset}/pairs.jsonl" for dataset in FT_DATASETS],
    output:
        asr=report(f"{RUN}/tables/finetune_asr.csv", caption="../report/finetune_asr.rst", category="Finetuning"),
        table1=report(f"{RUN}/tables/table1.csv", caption="../report/table1.rst", category="Finetuning"),
        landscape=f"{RUN}/tables/finetune_landscape_asr.csv",
        asr_parquet=f"{RUN}/tables/finetune_asr.parquet",
        table1_parquet=f"{RUN}/tables/table1.parquet",
        summary=f"{RUN}/finetune/summary.json",
    params:
        model=config["model"]["name"],
        judges=list(JUDGES),
        evaluations=FT_EVALUATIONS,
        eval_sets=EVAL_SETS,
        epochs=FT_SAVED,
        lines=FT_LINES,
        line_coords=list(LANDSCAPES[FT_LINES[0]].coords) if FT_LINES else [],
        plane=FT_PLANE,
        plane_coords=list(LANDSCAPES[FT_PLANE].coords) if FT_PLANE else [],
        datasets={f"f{k + 1}": name for k, name in enumerate(FT_DATASETS)},
        visage=config["visage"],
    log:
        f"{RUN}/logs/finetune_tables.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/finetune_tables.py"


rule system_prompt_tables:
    input:
        [path for names in VARIANT_LANDSCAPES.values() for path in landscape_judgments(names)],
    output:
        table2=report(f"{RUN}/tables/system_prompts.csv", caption="../report/system_prompts_table.rst", category="System prompts"),
        visage=f"{RUN}/tables/system_prompts_visage.csv",
        asr=f"{RUN}/tables/system_prompts_asr.csv",
    params:
        variants=VARIANT_LANDSCAPES,
        texts=SYSTEM_PROMPTS,
        main=MAIN,
        coords=list(LANDSCAPES[MAIN[0]].coords),
        judges=list(JUDGES),
        visage=config["visage"],
    log:
        f"{RUN}/logs/system_prompt_tables.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/system_prompt_tables.py"


rule capability_table:
    input:
        scores=[f"{RUN}/capability/{name}/{point}.json" for name in MAIN for point in points_of(name)],
        asr=f"{RUN}/tables/asr.csv",
    output:
        report(f"{RUN}/tables/capability.csv", caption="../report/capability_table.rst", category="Capability"),
    params:
        judge=next(iter(JUDGES)),
    log:
        f"{RUN}/logs/capability_table.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/capability_table.py"
