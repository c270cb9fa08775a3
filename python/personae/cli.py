"""The ``personae`` command."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _positive(text: str) -> int:
    """argparse type of every count (list length, batch size, epochs...): an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer (>= 1)")
    return v


def _count(text: str) -> int:
    """argparse type of counts where 0 means "off" (e.g. early-stopping patience)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a non-negative integer (>= 0)")
    return v


def _quickstart(a: argparse.Namespace) -> int:
    from personae.quickstart import run

    run(a.out, a.users, a.items, a.tastes, a.n, a.seed, a.device, a.quiet)
    return 0


def _sep(a: argparse.Namespace) -> str | None:
    """--sep, with the spellings a shell makes easy for a tab (``\\t``, ``tab``)."""
    sep = getattr(a, "sep", None)
    return "\t" if sep in ("\\t", "tab", "TAB") else sep


def _names(a: argparse.Namespace) -> list[str] | None:
    names = getattr(a, "names", None)
    return None if names is None else [n.strip() for n in names.split(",")]


def _read(path: str, a: argparse.Namespace, **kw):
    from personae.data import Interactions

    return Interactions.read(
        path,
        user_col=a.user_col,
        item_col=a.item_col,
        weight_col=a.weight_col,
        sep=_sep(a),
        names=_names(a),
        **kw,
    )


def _read_for(model, path: str, a: argparse.Namespace, **kw):
    """A file's interactions on the model's item vocabulary. Unknown item ids fail the command
    when fewer than half of the rows are known (a format mismatch, e.g. text vs numbers),
    unless --drop-unknown; otherwise they are dropped and the count is reported."""
    try:
        return _read(
            path, a, item_ids=model.item_ids, drop_unknown=True if a.drop_unknown else "auto", **kw
        )
    except ValueError as e:
        # The library's hint names its Python argument; on the command line it is a flag.
        text = str(e)
        if "drop_unknown=True" not in text:
            raise
        raise ValueError(text.replace("pass drop_unknown=True", "pass --drop-unknown")) from None


def _train(a: argparse.Namespace) -> int:
    data = _read(a.data, a)
    print(f"read {data} from {a.data}")
    est = _ESTIMATORS[a.model](a)
    # Every family carves its own validation from the data it is given (the fit protocol), and
    # writes its model to --out as it goes where it has anything to checkpoint.
    est.fit(data, show_progress=not a.quiet, checkpoint_dir=a.out)
    est.save(a.out)
    t = est.manifest["training"]
    val = t.get("val_ndcg")
    what = f"validation NDCG@{t.get('val_k')} {val:.4f}, " if isinstance(val, float) else ""
    print(f"model written to {a.out} ({what}fit in {t['seconds']:.1f} s)")
    return 0


def _multvae(a: argparse.Namespace):
    from personae import MultVAE

    return MultVAE(
        batch_size=a.batch_size or 500,
        lr=a.lr,
        patience=a.patience,
        device=a.device,
        seed=a.seed,
        epochs=a.epochs,
    )


def _ampcf(a: argparse.Namespace):
    from personae import AMPCF

    return AMPCF(n_personas=a.personas, tau=a.tau, device=a.device, seed=a.seed)


def _ease(a: argparse.Namespace):
    from personae import EASE

    return EASE(device=a.device, seed=a.seed)


def _graph_filter(a: argparse.Namespace):
    from personae import GraphFilter

    return GraphFilter(device=a.device, seed=a.seed)


def _popularity(a: argparse.Namespace):
    from personae import Popularity

    return Popularity()


_ESTIMATORS = {
    "multvae": _multvae,
    "ampcf": _ampcf,
    "ease": _ease,
    "graph_filter": _graph_filter,
    "popularity": _popularity,
}


def _recommend(a: argparse.Namespace) -> int:
    import personae
    from personae.data import write_recommendations

    model = personae.load(a.model)
    data = _read_for(model, a.data, a)
    print(f"read {data} from {a.data}; scoring with {model}")
    rows = write_recommendations(
        model,
        data,
        a.out,
        a.n,
        batch_size=a.batch_size,
        explain=a.explain,
        show_progress=not a.quiet,
    )
    print(f"top-{a.n} for {data.n_users} users ({rows} rows) written to {a.out}")
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    import personae
    from personae.metrics import evaluate

    if a.recommendations is not None:
        ids, truth = _lists_and_truth(a)
    elif a.model is not None and a.train is not None:
        model = personae.load(a.model)
        train = _read_for(model, a.train, a)
        test = _read_for(model, a.test, a, user_ids=train.user_ids)
        ids, _ = model.recommend(train.matrix, a.k)
        truth = test.matrix
    else:
        raise ValueError(
            "evaluate needs --model and --train (to make the lists), or --recommendations "
            "(a file of lists made elsewhere, e.g. reranked)"
        )
    for name, value in evaluate(ids, truth, a.k).items():
        print(f"{name:<24}{value:.4f}" if isinstance(value, float) else f"{name:<24}{value}")
    return 0


def _lists_and_truth(a: argparse.Namespace):
    """--recommendations as a padded ``(test users, k)`` id matrix and --test as the truth, on
    one item vocabulary: the items of both files (no model catalogue is known)."""
    from personae.data import Interactions, Vocabulary, lists_from_long, read_table

    source = f"--recommendations {a.recommendations}"
    recs = read_table(a.recommendations, sep=_sep(a), text_columns=(a.user_col, a.item_col))
    if a.item_col not in recs.columns:
        raise ValueError(f"{source}: no column {a.item_col!r}; columns are {list(recs.columns)}")
    test = _read(a.test, a)
    listed = recs[a.item_col].to_numpy()
    items, _ = Vocabulary.fit(
        np.concatenate([test.item_ids.astype(str), listed.astype(str)]), a.item_col
    )
    users, held, _ = test.to_arrays()
    truth = Interactions.from_arrays(users, held, user_ids=test.user_ids, item_ids=items).matrix
    ids = lists_from_long(
        recs,
        test.user_ids,
        items,
        a.k,
        user_col=a.user_col,
        item_col=a.item_col,
        score_col=a.score_col,
        source=source,
    )
    return ids, truth


def _split(a: argparse.Namespace) -> int:
    from personae.data import holdout_split, write_table

    data = _read(a.data, a)
    train, test = holdout_split(data, a.test_fraction, seed=a.seed)
    for part, out in ((train, a.train_out), (test, a.test_out)):
        write_table(part.to_frame(a.user_col, a.item_col, a.weight_col), out)
    print(
        f"{data}: {train.nnz} interactions to {a.train_out}, {test.nnz} to {a.test_out} "
        f"(per-user holdout of {a.test_fraction:g}, seed {a.seed})"
    )
    return 0


_YES, _NO, _SKIP = {"y", "yes", "1"}, {"n", "no", "0"}, {"?", "", "s", "skip"}


def _titles(model, a: argparse.Namespace) -> dict:
    """Item index -> display title, from --items (or the item ids)."""
    from personae.data import Vocabulary, read_table

    names = {i: str(x) for i, x in enumerate(model.item_ids)}
    if a.items is None:
        return names
    df = read_table(a.items, text_columns=(a.item_col,))
    for col in (a.item_col, a.title_col):
        if col not in df.columns:
            raise ValueError(
                f"--items {a.items}: no column {col!r}; columns are {list(df.columns)}"
            )
    # Items of the file the model does not know are skipped (and counted in a warning).
    codes, known = Vocabulary(model.item_ids).lookup(
        df[a.item_col].to_numpy(), column=a.item_col, source=a.items, drop_unknown=True
    )
    titles = df[a.title_col].astype(str).to_numpy()
    names.update(zip(codes[known].tolist(), titles[known], strict=True))
    return names


def _scripted_answers(path: str, pair: bool, group_size: int = 0) -> list[str]:
    """The replies of an --answers file (whitespace-separated, any number a line), refused
    whole with the line number of the first one that is not an answer (with group questions,
    a taste's number 1..group_size or 0 / none are answers too)."""
    valid = ({"1", "2"} if pair else _YES | _NO) | (_SKIP - {""}) | {"q"}
    if group_size:
        valid |= {str(k) for k in range(group_size + 1)} | {"none"}
    replies = []
    for k, line in enumerate(Path(path).read_text().splitlines(), 1):
        for token in line.split():
            if token.lower() not in valid:
                raise ValueError(
                    f"--answers {path}, line {k}: {token!r} is not an answer "
                    f"(expected one of {', '.join(sorted(valid))})"
                )
            replies.append(token.lower())
    return replies


def _interview(a: argparse.Namespace) -> int:
    import personae
    from personae.interview import GroupQuestion, Interview

    model = personae.load(a.model)
    if not hasattr(model, "base_tastes"):
        raise ValueError(f"{a.model} holds a {type(model).__name__}: interviews need AMP-CF")
    title = _titles(model, a)
    # Each taste is named by its three most distinctive titles (lift weighed by popularity).
    names = [
        f"taste {c}: " + " / ".join(title[int(i)] for i in row if i >= 0)
        for c, row in enumerate(model.distinctive_items(3))
    ]
    state = Path(a.state) if a.state else None
    if state is not None and state.exists():
        interview = Interview.from_json(model, state.read_text(), names=names)
        print(f"resumed {len(interview.answers)} answers from {state}")
        # The saved interview's settings win; say so where the command line asked otherwise.
        for flag, given, saved in (
            ("--kind", a.kind, interview.kind),
            ("--asks", a.asks, interview.asks),
            ("--groups", a.groups, interview.groups),
            ("--seed", a.seed, interview.seed),
        ):
            if given is not None and given != saved:
                print(f"  note: {flag} {given} ignored: the saved interview has {saved}")
    else:
        given = {"kind": a.kind, "seed": a.seed, "asks": a.asks}
        opts = {k: v for k, v in given.items() if v is not None}  # else Interview's defaults
        interview = Interview(model, names=names, groups=a.groups, **opts)
    pair = interview.kind == "pair"
    sizes = interview.group_size if interview.groups else 0
    scripted = None if a.answers is None else iter(_scripted_answers(a.answers, pair, sizes))
    keys = "[1/2/?/q]" if pair else "[y/n/?/q]"
    print(f"Answer {keys}: ? = don't know / no opinion, q = stop and recommend.")
    while len(interview.answers) < a.questions:
        try:
            q = interview.next_question()
        except ValueError as e:  # every item of the pool asked: the list is what is left
            print(f"({e}; stopping here)")
            break
        k = len(interview.answers) + 1
        group = isinstance(q, GroupQuestion)
        if group:
            # "Which of these is closest to you?": each taste by its three titles.
            valid = {str(c) for c in range(len(q) + 1)} | {"none"}
            ask = f"[{k}/{a.questions}] Which of these groups is closest to your taste?"
            shown = "".join(f"\n  {c}) {names[t]}" for c, t in enumerate(q, 1))
            prompt, ask_keys = ask + shown + "\n  0) none of these\n", f"[1-{len(q)}/0/?/q]"
        elif pair:
            prompt = (
                f"[{k}/{a.questions}] Which do you prefer: 1) {title[q[0]]}  2) {title[q[1]]}? "
            )
            valid, ask_keys = {"1", "2"}, keys
        else:
            # "Have you seen and liked 'Titanic'?": the user tells their past, and a "no" may
            # be a title not seen yet; or "Would you watch / buy / visit: Titanic?".
            if interview.asks == "liked-before":
                ask = f"Have you seen and liked '{title[q]}'?"
            else:
                ask = f"Would you watch / buy / visit: {title[q]}?"
            prompt = f"[{k}/{a.questions}] {ask} "
            valid, ask_keys = _YES | _NO, keys
        while True:
            if scripted is None:
                try:
                    reply = input(prompt + ask_keys + " ").strip().lower()
                except EOFError:
                    reply = "q"
            else:
                reply = next(scripted, "q")
                print(prompt + reply)
            if reply == "q" or reply in _SKIP or reply in valid:
                break
            if scripted is not None:  # a script that does not fit its question: refused
                raise ValueError(
                    f"--answers {a.answers}: {reply!r} does not answer question {k} "
                    f"(expected {ask_keys})"
                )
            print(f"  please answer {ask_keys}")
        if reply == "q":
            break
        if reply in _SKIP:
            liked = None
        elif group:
            liked = False if reply in ("0", "none") else q[int(reply) - 1]
        else:
            liked = reply == "1" if pair else reply in _YES
        interview.answer(q, liked)
        if state is not None:  # nothing lost if the terminal closes
            state.write_text(interview.to_json())
    ids, scores, persona = interview.recommend(a.n)
    because = interview.because(ids)
    print(f"\nTop {a.n} after {len(interview.answers)} answers:")
    for r, (i, p, b) in enumerate(zip(ids, persona, because, strict=True), 1):
        if i >= 0:
            why = f"; because you liked {title[int(b)]}" if b >= 0 else ""
            print(f"{r:>3}. {title[int(i)]}  [{names[int(p)]}{why}]")
    # The tastes the answers moved most above the prior (a new user's mean weights are the
    # population's shares: the largest weights alone name the same tastes for everyone).
    top = np.argsort(-(interview.weights - interview.tastes.prior_mean), kind="stable")[:3]
    print("Your strongest tastes: " + "; ".join(names[int(b)] for b in top))
    return 0


def _rerank(a: argparse.Namespace) -> int:
    import pandas as pd

    from personae.categories import Categories
    from personae.data import Interactions, Vocabulary, read_table, write_table
    from personae.metrics import nanmean
    from personae.rerank import CalibratedReranker

    if len(a.lam) not in (1, len(a.categories)):
        raise ValueError(f"give one --lam, or one per --categories ({len(a.categories)})")
    lams = a.lam * len(a.categories) if len(a.lam) == 1 else a.lam
    id_cols = (a.user_col, a.item_col)
    cand = read_table(a.candidates, text_columns=id_cols)
    hist = read_table(a.history, text_columns=id_cols)
    for flag, path, df, cols in (
        ("--candidates", a.candidates, cand, [a.user_col, a.item_col, a.score_col]),
        ("--history", a.history, hist, [a.user_col, a.item_col]),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(
                f"{flag} {path}: no column {missing[0]!r}; columns are {list(df.columns)}"
            )
    # The items in play are the candidates' and the history's; category rows of other items
    # (a whole-catalogue genre file) change nothing and are dropped, unless most rows are of
    # unknown items, which means the ids are written differently ('007' vs '7').
    items, _ = Vocabulary.fit(
        np.concatenate([cand[a.item_col], hist[a.item_col]]), a.item_col, a.candidates
    )
    users, _ = Vocabulary.fit(np.concatenate([cand[a.user_col], hist[a.user_col]]), a.user_col)
    layout = (
        [c.strip() for c in a.category_cols.split(",") if c.strip()]
        if a.category_cols
        else a.category_col
    )
    attrs = {}
    for path in a.categories:
        name = Path(path).stem if Path(path).stem not in attrs else path
        try:
            attrs[name] = Categories.read(
                path,
                a.item_col,
                layout,
                item_ids=items.ids,
                weight_col=None if a.category_cols else a.category_weight_col,
                split=None if a.category_cols else a.category_split,
                unknown="auto",
                missing="empty",
            )
        except ValueError as e:
            # item_ids here are the candidates' and the history's items, and the library's
            # hint names a Python argument the command line does not have.
            text = str(e).replace("item_ids", "the candidates' and history's items")
            raise ValueError(
                text.replace(" (unknown='ignore' drops them however many)", "")
            ) from None
    h = Interactions.from_dataframe(
        hist,
        a.user_col,
        a.item_col,
        a.weight_col,
        user_ids=users.ids,
        item_ids=items.ids,
        source=a.history,
    )

    def codes(vocab, col):
        return vocab.lookup(cand[col].to_numpy(), column=col, source=a.candidates)[0]

    frame = pd.DataFrame(
        {
            "u": codes(users, a.user_col),
            "i": codes(items, a.item_col),
            "s": cand[a.score_col].to_numpy(dtype=np.float32),
        }
    )
    multi = len(attrs) > 1
    rr = CalibratedReranker(
        attrs if multi else next(iter(attrs.values())),
        lam=dict(zip(attrs, lams, strict=True)) if multi else lams[0],
        smoothing=a.smoothing,
        normalize=a.normalize,
        rank_weighting=a.rank_weighting,
    )
    out = rr.rerank_dataframe(frame, "u", "i", "s", history=h, n=a.n)
    ckl_b, ckl_a = out.attrs["ckl_before"], out.attrs["ckl_after"]
    result = pd.DataFrame(
        {
            "user": users.ids[out["u"].to_numpy()],
            "item": items.ids[out["i"].to_numpy()],
            "score": out["s"].to_numpy(),
            "rank": out["rank"].to_numpy(),
        }
    )
    write_table(result, Path(a.out))
    print(f"calibrated top-{a.n} for {len(out.attrs['users'])} users written to {a.out}")
    for name in attrs:
        b = nanmean(ckl_b[name] if multi else ckl_b)  # users with a target
        f = nanmean(ckl_a[name] if multi else ckl_a)
        lam = rr.lam[name] if multi else rr.lam
        print(
            f"  {name}: mean C_KL {b:.4f} (plain top-{a.n}) -> {f:.4f} "
            f"(lambda {lam}, smoothing {a.smoothing}, ln)"
        )
    return 0


def _simulate(a: argparse.Namespace) -> int:
    from personae import simulate
    from personae.data import write_table

    t0 = time.perf_counter()
    world = simulate.World.make(
        a.users,
        a.items,
        a.tastes,
        drift=a.drift,
        noise=a.noise,
        satiation=a.satiation,
        reconsume=a.reconsume,
        seed=a.seed,
    )
    policies = [p.strip() for p in a.policies.split(",") if p.strip()]
    print(
        f"world: {world.n_users} users x {world.n_items} items, {world.n_tastes} true tastes; "
        f"{a.rounds} rounds of top-{a.n} lists, refit every {a.refit_every}"
    )
    table = simulate.run(
        world,
        policies,
        a.rounds,
        a.n,
        a.refit_every,
        seed=a.seed,
        lam=a.lam,
        device=a.device,
        progress=None if a.quiet else print,
    )
    out = Path(a.out)
    write_table(table, out / "simulation.csv")
    print(f"after round {int(table['round'].max())}:")
    print(simulate.report(table))
    try:
        from personae.plot import simulation

        pic = simulation(table, out / "simulation.png")
        print(f"table and picture written to {out / 'simulation.csv'} and {pic}")
    except ImportError:
        print(f"table written to {out / 'simulation.csv'} (no picture: pip install matplotlib)")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


def _simulate_parser(sub) -> None:
    from personae.simulate import DEFAULT_POLICIES

    s = _command(
        sub,
        _simulate,
        help="feedback-loop simulation: do lists erase minority tastes over rounds?",
        description="Synthetic users with known taste mixes are served by each policy for "
        "--rounds rounds; they consume by a position-aware choice model, the policy refits on "
        "what they consumed. Writes the per-round table (utility as a share of the oracle's, "
        "minority-taste retention, C_KL, Jaccard, Gini, coverage) and a picture to --out. "
        "Definitions in personae.simulate.",
    )
    s.add_argument("--out", default="personae-simulation", help="output folder")
    s.add_argument("--users", type=_positive, default=10000, help="synthetic users")
    s.add_argument("--items", type=_positive, default=5000, help="synthetic items")
    s.add_argument("--tastes", type=_positive, default=12, help="true tastes")
    s.add_argument("--rounds", type=_positive, default=20, help="rounds R")
    s.add_argument("--n", type=_positive, default=10, help="list length")
    s.add_argument("--refit-every", type=_positive, default=5, help="policies refit every k rounds")
    s.add_argument(
        "--policies",
        default=",".join(DEFAULT_POLICIES),
        help="comma-separated policy names (personae.simulate.available_policies(); 'als' "
        "needs implicit and is skipped from the default without it, 'multvae' is slow)",
    )
    s.add_argument("--lam", type=float, default=0.8, help="calibration weight of the cal policies")
    s.add_argument("--drift", type=float, default=0.0, help="taste drift per round")
    s.add_argument("--noise", type=float, default=0.05, help="share of non-attitude clicks")
    s.add_argument("--satiation", type=float, default=0.5, help="satiation past the appetite")
    s.add_argument("--reconsume", type=float, default=0.0, help="re-consumption factor")
    s.add_argument("--device", default="cpu", help="model fits: cpu, cuda, auto")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--quiet", action="store_true", help="no per-round lines")


def _io_args(p: argparse.ArgumentParser, unknown: bool = False, layout: bool = True) -> None:
    p.add_argument("--user-col", default="user", help="user column (CSV/Parquet)")
    p.add_argument("--item-col", default="item", help="item column (CSV/Parquet)")
    p.add_argument("--weight-col", default=None, help="optional weight column (CSV/Parquet)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if layout:
        p.add_argument(
            "--sep",
            default=None,
            help="field separator of delimited text ('\\t' or 'tab' for tabs); with it any "
            "extension is read as text (None: chosen by the extension)",
        )
        p.add_argument(
            "--names",
            default=None,
            help="comma-separated column names of a file without a header row, e.g. "
            "user,item,rating,ts for MovieLens' u.data",
        )
    if unknown:
        p.add_argument(
            "--drop-unknown",
            action="store_true",
            help="drop rows whose item ids the model does not know, however many (by default "
            "the command fails when fewer than half of the rows are known, since that usually "
            "means the ids are written differently, e.g. '007' vs '7'); drops are reported",
        )


def _command(
    sub, func, help: str, description: str, model: str | None = None
) -> argparse.ArgumentParser:
    """The subcommand named after `func` (``_train`` -> ``train``), which runs it; with
    `model`, it reads a model directory given by ``--model`` (`model` is its help)."""
    p = sub.add_parser(
        func.__name__.lstrip("_"),
        help=help,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(func=func)
    if model is not None:
        p.add_argument("--model", required=True, help=model)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``personae`` command and its subcommands."""
    p = argparse.ArgumentParser(
        prog="personae",
        description="Recommendations for users who are several tastes at once: persona models "
        "(AMP-CF) and Mult-VAE served from a Rust core, and a calibrated reranker.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    q = _command(
        sub,
        _quickstart,
        help="the persona model end to end on synthetic users with known tastes",
        description="On the built-in synthetic data (users who are mixes of known tastes): fit "
        "the default persona model (AMP-CF) and its single-taste version, show one multi-taste "
        "user's personas and the persona behind each item of their list, rerank with "
        "calibration, and print NDCG, minority-taste recall and C_KL for the three. Writes the "
        "model, the plain lists (CSV with the persona, the model's taste cluster and the item's "
        "true taste), the calibrated lists and a picture to --out. Needs the 'train' extra.",
    )
    q.add_argument(
        "--out",
        default="personae-quickstart",
        help="output folder (model/, recommendations.csv, recommendations_calibrated.csv, "
        "calibration.png)",
    )
    q.add_argument("--users", type=_positive, default=6000, help="synthetic users")
    q.add_argument("--items", type=_positive, default=3000, help="synthetic items")
    q.add_argument("--tastes", type=_positive, default=12, help="latent taste clusters")
    q.add_argument(
        "--n", type=_positive, default=20, help="list length N (also the metric cut-off)"
    )
    q.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    q.add_argument("--seed", type=int, default=0, help="random seed (data, split, fit)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")

    files = "CSV/TSV, Parquet, or LightGCN text (.txt: 'user item item ...' per line)"
    t = _command(
        sub,
        _train,
        help="train a model on an interactions file",
        description=f"Train on {files}. Every family chooses its settings (or, for "
        "Mult-VAE, when to stop) on a validation slice it carves from the data: 20% of the "
        "items of up to 5,000 users. Mult-VAE saves every new best model to --out as it "
        "trains; AMP-CF (the default persona model), EASE and the graph filter fit in closed "
        "form.",
    )
    t.add_argument("--data", required=True, help="interactions file")
    t.add_argument("--model", default="ampcf", choices=sorted(_ESTIMATORS), help="model family")
    t.add_argument("--out", required=True, help="model directory to write")
    t.add_argument("--epochs", type=_positive, default=100, help="Mult-VAE: maximum epochs")
    t.add_argument(
        "--batch-size", type=_positive, default=None, help="Mult-VAE: users per step (500)"
    )
    t.add_argument(
        "--personas", type=_positive, default=8, help="AMP-CF: most personas per user (K)"
    )
    t.add_argument("--tau", type=float, default=1.0, help="AMP-CF: attention temperature")
    t.add_argument("--lr", type=float, default=1e-3, help="Mult-VAE: Adam learning rate")
    t.add_argument("--patience", type=_count, default=10, help="Mult-VAE: early-stopping patience")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    _io_args(t)

    r = _command(
        sub,
        _recommend,
        help="top-N lists for the users of a file",
        description=f"Score every user of {files} (their rows are the model's "
        "input) and write long-format user,item,score,rank to --out (.parquet, .csv or .tsv), "
        "--batch-size users at a time: each batch's rows are appended as they come, so memory "
        "holds one batch's lists (the input is read whole). The file appears under its name "
        "only once complete.",
        model="model directory",
    )
    r.add_argument("--data", required=True, help="user histories")
    r.add_argument("--n", type=_positive, default=20, help="list length")
    r.add_argument("--out", required=True, help="output file (.parquet, .csv, .tsv)")
    r.add_argument(
        "--batch-size",
        type=_positive,
        default=10000,
        help="users per scoring call and per piece written (memory grows with it)",
    )
    r.add_argument(
        "--explain",
        action="store_true",
        help="AMP-CF: add the persona behind each item (persona, its index in the user's "
        "personas) and that persona's taste cluster (taste_cluster, the same for every user)",
    )
    _io_args(r, unknown=True)

    e = _command(
        sub,
        _evaluate,
        help="Recall/NDCG/coverage of a model, or of a lists file, on a test file",
        description="Recommend from --train histories with --model (seen items excluded), or "
        "read lists made elsewhere (--recommendations, e.g. a reranked file), and compare "
        "with --test; metric definitions in personae.metrics.",
    )
    e.add_argument("--model", default=None, help="model directory (with --train)")
    e.add_argument("--train", default=None, help="histories (the model's input)")
    e.add_argument("--test", required=True, help="held-out interactions")
    e.add_argument(
        "--recommendations",
        default=None,
        help="long-format lists (user, item, and rank or --score-col) to evaluate instead of "
        "a model's; every --test item counts as truth, and coverage is over the items of "
        "--test and the lists (no model catalogue is known)",
    )
    e.add_argument("--score-col", default="score", help="--recommendations: score column")
    e.add_argument("--k", type=_positive, default=20, help="cut-off K")
    _io_args(e, unknown=True)

    sp_ = _command(
        sub,
        _split,
        help="seeded per-user holdout of an interactions file into train and test files",
        description="Moves round(fraction x n) random interactions of each user (at least one "
        "kept for training) to --test-out, the rest to --train-out (the holdout_split of the "
        "Python API, the LightGCN/BARS protocol), with the original ids and weights.",
    )
    sp_.add_argument("--data", required=True, help="interactions file")
    sp_.add_argument("--train-out", required=True, help="training file to write")
    sp_.add_argument("--test-out", required=True, help="test file to write")
    sp_.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of each user's items held out"
    )
    sp_.add_argument("--seed", type=int, default=0, help="random seed")
    _io_args(sp_)

    rr = _command(
        sub,
        _rerank,
        help="calibrated reranking of candidate lists (Steck 2018)",
        description="Rerank long-format user,item,score candidates (e.g. the output of "
        "'personae recommend' with a large --n, or any model's) so that each list's category "
        "distribution matches the user's history: greedy (1 - lambda) * relevance - lambda * "
        "KL(p || q~), natural log. --categories holds item,category rows (an item with k "
        "categories gives each 1/k unless --category-weight-col is given), or with "
        "--category-cols one row per item and one 0/1 column per category. Category rows of "
        "items that are neither candidates nor in the history are ignored (with a warning); "
        "the command fails when most rows are, since the ids are then written differently.",
    )
    rr.add_argument("--candidates", required=True, help="user,item,score file (.csv/.parquet)")
    rr.add_argument("--history", required=True, help="user,item[,weight] file")
    rr.add_argument(
        "--categories",
        required=True,
        action="append",
        help="item,category[,weight] file; repeat for several attributes (e.g. genre and "
        "decade), each with its own KL term and --lam",
    )
    rr.add_argument("--out", required=True, help="output file (.parquet, .csv, .tsv)")
    rr.add_argument("--n", type=_positive, default=10, help="list length")
    rr.add_argument(
        "--lam",
        type=float,
        action="append",
        help="calibration weight lambda in [0, 1]; one, or one per --categories (their sum at "
        "most 1); default 0.5 split evenly",
    )
    rr.add_argument("--smoothing", type=float, default=0.01, help="smoothing of q in (0, 1)")
    rr.add_argument(
        "--normalize",
        default="minmax",
        choices=["none", "minmax", "softmax"],
        help="per-user score normalisation before the objective",
    )
    rr.add_argument("--rank-weighting", action="store_true", help="weight q by 1/log2(rank+2)")
    rr.add_argument("--score-col", default="score", help="candidate score column")
    rr.add_argument("--category-col", default="category", help="category column")
    rr.add_argument("--category-weight-col", default=None, help="optional category weight column")
    rr.add_argument(
        "--category-split",
        default=None,
        help="separator of cells holding several categories, e.g. '|' for MovieLens' "
        "'Adventure|Comedy'",
    )
    rr.add_argument(
        "--category-cols",
        default=None,
        help="wide format: comma-separated category columns (one 0/1 or weight column per "
        "category, one row per item, e.g. MovieLens-100K's genre flags) instead of "
        "--category-col",
    )
    _io_args(rr, layout=False)

    iv = _command(
        sub,
        _interview,
        help="place a new user among an AMP-CF model's tastes in a few questions",
        description="Asks which of a few named tastes is closest to you, then whether you have "
        "seen and liked titles the list believes in (or, with --asks would-like, whether you "
        "would watch them; or, with --kind pair, which of two you prefer) "
        "(personae.Interview), then prints a top-N list with the taste and the liked answer "
        "behind each item. Answer y / n / ? (no opinion) / q (stop), a group by its number "
        "(0: none of these), or 1 / 2 for pairs.",
        model="AMP-CF model directory",
    )
    iv.add_argument("--items", default=None, help="item file with titles (.csv/.parquet)")
    iv.add_argument("--item-col", default="item", help="item id column of --items")
    iv.add_argument("--title-col", default="title", help="title column of --items")
    iv.add_argument("--questions", type=_positive, default=10, help="most questions to ask")
    iv.add_argument(
        "--kind",
        default=None,
        choices=["item", "pair"],
        help="question kind (default item; a resumed --state keeps its own)",
    )
    iv.add_argument("--n", type=_positive, default=10, help="list length")
    iv.add_argument("--answers", default=None, help="file of answers, for scripted use")
    iv.add_argument("--state", default=None, help="JSON file to save and resume the interview")
    iv.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    iv.add_argument(
        "--groups",
        type=int,
        default=None,
        help="how many 'which of these groups is closest to you?' questions open the interview "
        "(None: personae.interview.GROUPS, three)",
    )
    iv.add_argument(
        "--asks",
        default=None,
        choices=["liked-before", "would-like"],
        help="item questions ask 'have you seen and liked it?' (liked-before, the default: a "
        "'no' may be unseen, so it can still be listed, and the questions ask the list's best "
        "items) or "
        "'would you watch it?' (a 'no' keeps it off the list)",
    )
    _simulate_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``personae`` command; returns the exit code (1 with a one-line error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "command", None) == "rerank" and not args.lam:
        args.lam = [0.5 / len(args.categories)]
    import warnings

    def show(message, category, *_rest, **_kw):
        print(f"personae: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("personae: error: interrupted", file=sys.stderr)
        return 130
    except ImportError as e:
        print(f"personae: error: {_missing_extra(e)}", file=sys.stderr)
        return 1
    except MemoryError as e:
        print(f"personae: error: out of memory: {_one_line(e, 'MemoryError')}", file=sys.stderr)
        return 1
    except Exception as e:  # every other error: one line, exit 1 (a pipeline reads the code)
        print(f"personae: error: {_one_line(e, type(e).__name__)}", file=sys.stderr)
        return 1


def _one_line(e: BaseException, fallback: str) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    text = " ".join(str(e).split())
    if not text:
        return fallback
    # Errors personae raises are written for users; anything else is named by its type, so a
    # bare "0" or "'x'" from deep in a library still says what happened.
    mine = isinstance(e, (ValueError, TypeError, OSError, RuntimeError, MemoryError))
    return text if mine else f"{type(e).__name__}: {text}"


_EXTRAS = {
    "torch": "train",
    "tqdm": "train",
    "pandas": "io",
    "pyarrow": "io",
    "fastparquet": "io",
    "matplotlib": "plot",
    "ray": "ray",
}


def _missing_extra(e: ImportError) -> str:
    """A missing optional dependency as one line that names the extra to install."""
    text = " ".join(str(e).split())
    if "pip install" in text:  # personae's own message already says what to install
        return text
    name = (e.name or "").split(".")[0]
    extra = _EXTRAS.get(name)
    if extra is None:
        return text or "ImportError"
    return f"{text}: this command needs the '{extra}' extra: pip install 'personae[{extra}]'"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
