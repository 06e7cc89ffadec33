# Table 1: the ASR of every finetuning checkpoint, the paper's Table 1, and the ASR along the lines
# to the finetunes and over their plane.


rule finetune_tables:
    input:
        checkpoints=checkpoint_judgments(),
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
        code=code("finetune_tables.py"),
        model=config["model"]["name"],
        judges=list(JUDGES),
        eval_sets=EVAL_SETS,
        epochs=FT_SAVED,
        lines=FT_LINES,
        plane=FT_PLANE,
        datasets={f"f{k + 1}": name for k, name in enumerate(FT_DATASETS)},
        visage=config["visage"],
    log:
        f"{RUN}/logs/finetune_tables.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/finetune_tables.py"
