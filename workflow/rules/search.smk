# Kappa searches: rounds of parallel probe fits, one job per probe; all state in files.
# Each round is a checkpoint whose decision (converged / next probes) the next round
# reads; a probe confirmed at the stage's length continues an earlier probe's checkpoint.
# choose_kappa links the chosen probe's checkpoint to chosen_checkpoint.h5, the input
# of the stage's final fit (so a changed final fit never reruns a probe).


rule start_kappa_search:
    input:
        unpack(search_start_inputs),
    output:
        "results/search/{stage}/round0/decision.tsv",
    log:
        "results/logs/start_kappa_search/{stage}.log",
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        search=SEARCH,
    script:
        "../../scripts/start_kappa_search.py"


rule probe_kappa:
    input:
        unpack(probe_inputs),
    output:
        table="results/search/{stage}/round{round}/probe{probe}.tsv",
        checkpoint=probe_checkpoint_output(),
    log:
        "results/logs/probe_kappa/{stage}/round{round}/probe{probe}.log",
    benchmark:
        "results/benchmarks/probe_kappa/{stage}/round{round}/probe{probe}.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    threads: 1
    resources:
        **fit_resources(probe_iterations),
        gpu=1,
    params:
        model=model_config(),
        num_iters=SEARCH["num_iters"],
        kappa=None,  # the round's decision gives each probe its kappa
        seed=config["seed"],
        save_every_n_iters=config["save_every_n_iters"],
        jitter=config["jitter"],
    script:
        "../../scripts/probe_kappa.py"


checkpoint search_round:
    input:
        unpack(round_inputs),
    output:
        "results/search/{stage}/round{round,[1-9][0-9]*}/decision.tsv",
    log:
        "results/logs/search_round/{stage}/round{round}.log",
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        search=SEARCH,
        stage_iters=lambda wildcards: config[wildcards.stage]["num_iters"],
    script:
        "../../scripts/search_round.py"


rule choose_kappa:
    input:
        unpack(choose_inputs),
    output:
        chosen="results/search/{stage}/chosen.tsv",
        checkpoint="results/search/{stage}/chosen_checkpoint.h5",
        trace=report(
            "results/search/{stage}/trace.tsv",
            caption="../report/search_trace.rst",
            category="Kappa search",
            labels={"stage": "{stage}", "figure": "trace table"},
        ),
    log:
        "results/logs/choose_kappa/{stage}.log",
    conda:
        "../../envs/kpms-flow.yaml"
    script:
        "../../scripts/choose_kappa.py"


rule plot_kappa_search:
    input:
        "results/search/{stage}/trace.tsv",
    output:
        report(
            "results/search/{stage}/trace.png",
            caption="../report/search_plot.rst",
            category="Kappa search",
            labels={"stage": "{stage}", "figure": "median duration vs kappa"},
        ),
    log:
        "results/logs/plot_kappa_search/{stage}.log",
    benchmark:
        "results/benchmarks/plot_kappa_search/{stage}.tsv"
    conda:
        "../../envs/kpms-flow.yaml"
    params:
        target_duration_ms=SEARCH["target_duration_ms"],
        dpi=config["plots"]["dpi"],
    script:
        "../../scripts/plot_kappa_search.py"
