# Over-refusal: the safe prompts of over_refusal answered at every point of the main landscapes
# ("d1@over-refusal" answers at the points of "d1", with the same directions, grid and decoding) and
# judged by the refusal judge; the ASR on the harmful prompts beside the refusal rate on the safe ones.


rule over_refusal_table:
    input:
        harmful=[f"{RUN}/judgments/{REFUSAL_JUDGE}/{name}.jsonl" for name in MAIN],
        safe=[f"{RUN}/judgments/{REFUSAL_JUDGE}/{name}.jsonl" for name in OVER_REFUSAL],
    output:
        report(f"{RUN}/tables/over_refusal.csv", caption="../report/over_refusal_table.rst", category="Over-refusal"),
    params:
        code=code("over_refusal_table.py"),
        setup=SETUP,
        safe_prompts=PROMPTS[OVER_REFUSAL[0]] if OVER_REFUSAL else None,
        judge=REFUSAL_JUDGE,
        bootstrap={key: config["visage"][key] for key in ("bootstrap", "confidence", "seed")},
    log:
        f"{RUN}/logs/over_refusal_table.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/over_refusal_table.py"


rule over_refusal_figures:
    input:
        f"{RUN}/tables/over_refusal.csv",
    output:
        report(f"{RUN}/figures/over_refusal.png", caption="../report/over_refusal.rst", category="Over-refusal"),
        f"{RUN}/figures/over_refusal.pdf",
    params:
        code=code("over_refusal_figures.py"),
        setup=SETUP,
        safe_prompts=PROMPTS[OVER_REFUSAL[0]] if OVER_REFUSAL else None,
        style=config["figures"],
        run=config["run"],
        judge=REFUSAL_JUDGE,
    log:
        f"{RUN}/logs/over_refusal_figures.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/over_refusal_figures.py"
