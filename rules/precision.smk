# Sequential directions (landscape.precision): once the first min_directions landscapes are judged, a
# checkpoint decides from the hierarchical VISAGE interval (directions and prompts resampled) whether
# one more landscape is needed; each further one is planned, generated and judged only when the
# decision before it asks for it. The VISAGE tables, figures and bundle take the landscapes decided on.
checkpoint precision:
    input:
        lambda wc: [f"{RUN}/judgments/{next(iter(JUDGES))}/{name}.jsonl" for name in decided_landscapes(wc)],
    output:
        f"{RUN}/precision/after{{measured}}.json",
    wildcard_constraints:
        measured="[0-9]+",
    params:
        code=code("precision.py"),
        precision=PRECISION,
        visage=config["visage"],
        landscapes=decided_landscapes,
    log:
        f"{RUN}/logs/precision/after{{measured}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/precision.py"


rule precision_table:
    input:
        lambda wc: [f"{RUN}/precision/after{count}.json" for count in range(len(MAIN), len(measured_landscapes()) + 1)],
    output:
        f"{RUN}/tables/precision.csv",
    params:
        code=code("precision_table.py"),
    log:
        f"{RUN}/logs/precision_table.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/precision_table.py"


localrules:
    precision,
    precision_table,
