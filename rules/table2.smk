# Table 2: ASR and VISAGE of every system prompt variant, and the paper's Table 2.


rule system_prompt_tables:
    input:
        [path for names in VARIANT_LANDSCAPES.values() for path in landscape_judgments(names)],
    output:
        table2=report(f"{RUN}/tables/system_prompts.csv", caption="../report/system_prompts_table.rst", category="System prompts"),
        visage=f"{RUN}/tables/system_prompts_visage.csv",
        asr=f"{RUN}/tables/system_prompts_asr.csv",
    params:
        code=code("system_prompt_tables.py"),
        setup=SETUP,
        variants=VARIANT_LANDSCAPES,
        texts=SYSTEM_PROMPTS,
        judges=list(JUDGES),
        visage=config["visage"],
    log:
        f"{RUN}/logs/system_prompt_tables.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/system_prompt_tables.py"
