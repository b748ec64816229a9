"""The Markdown rendering of an evaluation report: what a person reads to decide."""

from __future__ import annotations


def _f(x, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _p(x) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def _ci(d: dict, pct: bool = False) -> str:
    f = _p if pct else _f
    return f"{f(d['estimate'])} [{f(d['low'])}, {f(d['high'])}]"


def vol_sizing_markdown(section: dict | None) -> list[str]:
    """The constant-vs-volatility-targeted table (no lines for a report without the section)."""
    if not section:
        return []
    out = ["## Constant vs volatility-targeted size", ""]
    if "skipped" in section:
        return out + [f"Not computed: {section['skipped']}.", ""]
    sc = section["scale"]
    out += [
        f"Position x min(sqrt(target / forecast), {section['cap']:g}): the HAR-RV + seasonality forecast of the "
        f"next {section['horizon_bars']} bars' realised variance, from the bars up to the decision bar only, "
        "fitted on the train split; the target makes the average scale on train exactly 1; the applied scale is "
        f"kept until the forecast's moves more than {section['band']:.0%} from it. Same costs, charged "
        f"on the scaled turnover; {section['n_bars_scored']:,} bars scored (scale mean {_f(sc['mean'])}, "
        f"range {_f(sc['min'])}–{_f(sc['max'])}, {_p(sc['fraction_capped'])} at the cap).",
        *([f"Forecaster: {section['source']}."] if section.get("source") else []),
        "",
        f"| policy | Sharpe constant | Sharpe vol-targeted | Δ Sharpe [{section['confidence']:.0%} paired CI] | "
        "return constant | return vol-targeted | fees constant | fees vol-targeted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in section["policies"].items():
        c, v = e["constant"], e["vol_target"]
        out.append(
            f"| {name.replace('_', ' ')} | {_f(c['sharpe'])} | {_f(v['sharpe'])} | {_ci(e['difference']['sharpe'])} "
            f"({e['difference']['word']}) | {_p(c['total_return'])} | {_p(v['total_return'])} | "
            f"{_p(c['fees_paid'])} | {_p(v['fees_paid'])} |"
        )
    return out + [""]


def report_markdown(report: dict, images: dict[str, str]) -> str:
    """The report as Markdown: the verdict first, then each section a reader checks it against."""
    out = _header(report)
    out += _performance(report["metrics"])
    out += _inference(report)
    out += _monte_carlo(report["monte_carlo"])
    out += _baselines(report)
    out += _cost_sensitivity(report["cost_sensitivity"])
    out += vol_sizing_markdown(report.get("vol_sizing"))
    out += _robustness(report["robustness"])
    v = report["verdict"]
    out += ["## Checks", ""] + [
        f"- [{'x' if v[k] else ' '}] {k.replace('_', ' ')}" for k in v if isinstance(v[k], bool)
    ]
    out += [""] + _method(report)
    if images:
        out += ["## Pictures", ""] + [f"![{k}]({name})" for k, name in images.items()] + [""]
    return "\n".join(out)


def _header(report: dict) -> list[str]:
    """Title, verdict, warnings, checkpoint, the bars and the costs."""
    meta, v = report["meta"], report["verdict"]
    src = ", ".join(f"{k}: {meta[k]}" for k in ("model", "symbol", "split", "run_id") if meta.get(k) is not None)
    out = [f"# Evaluation report{(' — ' + src) if src else ''}", ""]
    out += [f"**Verdict:** {v['summary']} ({v['passed']}/{v['total']} checks passed).", ""]
    if v.get("comparison"):  # reports written before the wording helper have no such line
        out += [f"Against the strongest baseline: {v['comparison']}.", ""]
    if meta.get("selection_used_test"):
        out += ["> **Warning:** the training run evaluated on the TEST split; these numbers are not out of sample.", ""]
    if meta.get("checkpoint_choice"):
        out += [f"Checkpoint: {meta['checkpoint_choice']}", ""]
    return out + [
        f"- Bars: {meta['n_bars']:,} {meta['timeframe']} ({meta['market']}, {meta['periods_per_year']:,.0f} bars a year)"
        + (f", {meta['start']} .. {meta['end']}" if meta.get("start") else ""),
        f"- Costs: fee {meta['costs']['fee_bps']} bps, spread {meta['costs']['spread_bps']} bps, slippage "
        f"{meta['costs']['slippage_bps']} bps → {meta['costs']['cost_rate_bps']:.2f} bps per unit traded",
        "- Fills: decided after the close of bar t, filled at the open of bar t+1 (the training convention)",
        "",
    ]


def _performance(m: dict) -> list[str]:
    rows = [
        ("total return", _p(m["total_return"])),
        ("annualised return", _p(m["annualised_return"])),
        ("annualised volatility", _p(m["annualised_volatility"])),
        ("Sharpe (annualised)", _f(m["sharpe"])),
        ("Sortino", _f(m["sortino"])),
        ("Calmar", _f(m["calmar"])),
        ("max drawdown", _p(m["max_drawdown"])),
        (
            "max drawdown duration",
            f"{m['max_drawdown_duration_bars']:,} bars"
            + (f" ({m['max_drawdown_duration_days']:.1f} days)" if "max_drawdown_duration_days" in m else ""),
        ),
        ("profit factor (bars)", _f(m["profit_factor"])),
        ("win rate (bars)", _p(m["win_rate"])),
        ("expectancy per active bar", _f(m["expectancy"] * 1e4, ".3f") + " bps"),
        ("trades", f"{m['trades']:,}"),
        ("trade win rate", _p(m.get("trade_win_rate"))),
        ("trade expectancy", "n/a" if m.get("trade_expectancy") is None else f"{m['trade_expectancy'] * 1e4:.2f} bps"),
        ("turnover (per year)", f"{m['turnover']:.1f} ({m['turnover_per_year']:.1f})"),
        ("exposure", _p(m["exposure"])),
        ("fees paid (fraction of initial equity)", _p(m["fees_paid"])),
    ]
    return ["## Performance", "", "| metric | value |", "|---|---|"] + [f"| {k} | {val} |" for k, val in rows] + [""]


def _inference(report: dict) -> list[str]:
    """PSR, DSR and the bootstrap intervals."""
    inf, b = report["sharpe_inference"], report["bootstrap"]
    return [
        "## Is the Sharpe real?",
        "",
        f"- Probabilistic Sharpe Ratio (vs {inf['psr_benchmark_sharpe']:.2f} annualised): **{inf['psr']:.4f}**"
        f" (per-bar Sharpe {inf['sharpe_per_period']:.5f}, skew {inf['skew']:.2f}, kurtosis {inf['kurtosis']:.1f}, "
        f"{inf['n_obs']:,} bars)",
        f"- Deflated Sharpe Ratio over {inf['n_trials']} trial(s): **{inf['dsr']:.4f}** — expected best Sharpe of "
        f"skill-less trials {inf['expected_max_sharpe_annualised']:.2f} annualised "
        f"(trial variance from {inf['trial_sharpe_variance_source'].replace('_', ' ')}; trial count from "
        f"{inf.get('n_trials_source', 'config')})",
        f"- {b['confidence']:.0%} block-bootstrap intervals ({b['method']}, block {b['block_length']:.1f} bars, "
        f"{b['n_resamples']:,} resamples):",
        f"  - Sharpe {_ci(b['intervals']['sharpe'])}",
        f"  - total return {_ci(b['intervals']['total_return'], pct=True)}",
        f"  - max drawdown {_ci(b['intervals']['max_drawdown'], pct=True)}",
        "",
    ]


def _monte_carlo(mc: dict) -> list[str]:
    out = [
        f"## Monte Carlo risk over {mc['horizon_days']:g} trading days ({mc['horizon_bars']:,} bars, {mc['n_paths']:,} paths)",
        "",
        "| level | VaR | CVaR |",
        "|---|---|---|",
    ]
    out += [f"| {float(k):.0%} | {_p(mc['var'][k])} | {_p(mc['cvar'][k])} |" for k in mc["var"]] + [""]
    return (
        out
        + [f"- P(drawdown > {d['threshold']:.0%}) = {d['probability']:.2%}" for d in mc["drawdown_probability"]]
        + [""]
    )


def _baselines(report: dict) -> list[str]:
    """The baselines table (the strongest starred), ridge's definition, the random policies."""
    conf = f"{report['bootstrap']['confidence']:.0%}"
    strongest = report["verdict"].get("strongest_baseline")
    out = [
        "## Baselines (same bars, same costs)",
        "",
        f"| baseline | Sharpe | total return | agent − baseline Sharpe ({conf} CI) | agent − baseline return ({conf} CI) |",
        "|---|---|---|---|---|",
    ]
    for k in ("buy_and_hold", "sma_crossover", "ridge", "flat"):
        e = report["baselines"].get(k)
        if e is None:
            continue
        star = " (strongest)" if k == strongest else ""
        out.append(
            f"| {k.replace('_', ' ')}{star} | {_f(e['metrics']['sharpe'])} | {_p(e['metrics']['total_return'])} | "
            f"{_ci(e['difference']['sharpe'])} | {_ci(e['difference']['total_return'], pct=True)} |"
        )
    r = report["baselines"]["random"]
    out.append(
        f"| random ({r['n_seeds']} seeds, mean) | {_f(r['sharpe']['mean'])} | {_p(r['total_return']['mean'])} | "
        f"{_ci(r['difference']['sharpe'])} | {_ci(r['difference']['total_return'], pct=True)} |"
    )
    if "ridge" in report["baselines"]:
        p = report["baselines"]["ridge"]["params"]
        out += [
            "",
            f"Ridge: a linear forecast on the agent's own features fitted on the train split (alpha {p['alpha']:g}), "
            f"long above +{p['band_sd']:g} sd and short below -{p['band_sd']:g} sd, holding in between (alpha and "
            "band chosen by net Sharpe on the validation split).",
        ]
    return out + [
        "",
        f"The agent's Sharpe beats {r['agent_sharpe_percentile']:.0%} of {r['n_seeds']} random policies with the "
        f"same rate of position changes (random Sharpe 5–95%: {r['sharpe']['p05']:.2f} .. {r['sharpe']['p95']:.2f}).",
        "",
    ]


def _cost_sensitivity(cs: dict) -> list[str]:
    out = [
        "## Cost sensitivity",
        "",
        f"Break-even cost: **{_f(cs['break_even_cost_bps'])} bps per side** (trained with {cs['actual_cost_bps']:.2f} bps)"
        + ("" if cs["profitable_before_costs"] else " — the agent loses money even before costs")
        + ".",
        "",
        "| fee bps | slippage bps | cost bps | Sharpe | total return |",
        "|---|---|---|---|---|",
    ]
    return (
        out
        + [
            f"| {g['fee_bps']:g} | {g['slippage_bps']:g} | {g['cost_bps']:.2f} | {g['sharpe']:.2f} | {_p(g['total_return'])} |"
            for g in cs["grid"]
        ]
        + [""]
    )


def _robustness(rb: dict) -> list[str]:
    """Calendar periods, then the start-offset sensitivity."""
    out = ["## Robustness", ""]
    for key, title in (("monthly", "Month"), ("quarterly", "Quarter")):
        sec = rb.get(key)
        if not sec:
            continue
        out += [f"| {title} | bars | return | Sharpe | max drawdown |", "|---|---|---|---|---|"]
        out += [
            f"| {p['period']} | {p['n_bars']:,} | {_p(p['total_return'])} | {_f(p['sharpe'])} | {_p(p['max_drawdown'])} |"
            for p in sec["periods"]
        ]
        d = sec["return_dispersion"]
        out += [
            "",
            f"{title}ly returns: mean {_p(d['mean'])}, std {_p(d['std'])}, {_p(d['fraction_positive'])} positive.",
            "",
        ]
    so = rb["start_offsets"]
    if len(so["episodes"]) <= 1:
        return out
    how = "policy re-run from each start" if rb["start_offset_source"] == "rerun" else "same decisions, later start"
    out += [
        f"Start-offset sensitivity ({how}):",
        "",
        "| start bar | start | Sharpe | total return |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {e['offset']:,} | {e['start'] or '-'} | {_f(e['sharpe'])} | {_p(e['total_return'])} |"
        for e in so["episodes"]
    ]
    d = so["sharpe_dispersion"]
    return out + [
        "",
        f"Sharpe across starts: {_f(d['mean'])} ± {_f(d['std'])} (min {_f(d['min'])}, max {_f(d['max'])}).",
        "",
    ]


def _method(report: dict) -> list[str]:
    """How the numbers are made, for a reader who checks the method."""
    meta, b = report["meta"], report["bootstrap"]
    return [
        "## How these numbers are made",
        "",
        f"- Returns are per-bar changes of the equity curve (not per trade), net of costs; annualised with "
        f"{meta['periods_per_year']:,.0f} bars a year ({meta['market']} calendar: "
        + ("260 trading days" if meta["market"] == "fx" else "365 days")
        + ").",
        "- PSR and DSR (Bailey & López de Prado) use the per-bar Sharpe, skewness and raw kurtosis; the DSR tests "
        "against the best Sharpe expected from the stated number of skill-less trials.",
        f"- Intervals are {b['method'].replace('_', '-')} block-bootstrap percentiles; agent-minus-baseline intervals "
        "resample the agent and the baseline on the same bars (paired). The random baseline changes position as "
        "often as the agent, so it pays similar costs.",
        "- Break-even cost: the cost per unit traded at which the mean net return per bar (and so the Sharpe) is zero.",
        "- Monte Carlo: block-bootstrapped paths of the horizon's length; VaR/CVaR are losses of the compounded "
        "horizon return.",
        "",
    ]
