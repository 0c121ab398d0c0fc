"""cmf lineage ARTIFACT: the upstream tree of an artifact."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape as _escape
from rich.tree import Tree

from cmf_core.cli.common import (
    COUNT,
    JsonOpt,
    StoreOpt,
    console,
    get_store,
    print_json,
    short,
    visible,
)
from cmf_core.errors import InvalidInputError
from cmf_core.jsonutil import MAX_NESTING, TooDeepError
from cmf_core.lineage import LineageNode, Query, fold_task_values
from cmf_core.model import Artifact, is_task_value

#: the most steps (execution hops) whose nested tree ``--json`` prints: JSON data nests at
#: most :data:`cmf_core.jsonutil.MAX_NESTING` levels, and each step takes four
JSON_HOPS = (MAX_NESTING - 4) // 4


#: The most entries (artifacts and executions, a line each in a wide terminal, two or three in 80
#: columns) a lineage tree prints without --depth: about four screens of 50 lines, what a reader
#: takes in at a terminal. A larger tree (a model retrained from the last one every night for a
#: year is thousands of steps deep) is cut at the depth that fits, with a note saying so.
TREE_ENTRIES = 200

#: Parameters shown on an execution's line of a lineage tree (``cmf executions`` shows all).
PARAMS_SHOWN = 4


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)


def escape(text: str) -> str:
    """Recorded text as rich markup shows it literally, invisible characters written out."""
    return _escape(visible(text))


def label(node: LineageNode) -> str:
    """The node's line in rich markup, the recorded names escaped (``model[red].pkl`` stays)."""
    r = node.record
    if isinstance(r, Artifact):
        text = (f"[bold]{escape(r.type)}[/] {escape(r.name)} "
                f"[dim]{short(r.id)} @{escape(r.site)}[/]")
        if is_task_value(r):
            text += " [dim](task result: a value passed between tasks in memory)[/]"
    else:
        shown = list(r.params.items())[:PARAMS_SHOWN]
        params = ", ".join(f"{k}={v}" for k, v in shown)
        if len(r.params) > len(shown):  # say so: a missing parameter reads as never set
            params += f", ... {len(r.params) - len(shown)} more"
        text = (f"[cyan]{escape(r.pipeline)}/{escape(r.stage)}[/] [dim]{r.id} "
                f"@{escape(r.site)}[/] {r.status.value}"
                + (f" ({escape(params)})" if params else ""))
        if node.via is not None:  # its result, folded: the line reads "<- via task result"
            text = f"[dim]via task result:[/] {text}"
    return text + (" [dim](see above)[/]" if node.seen else "")


def to_rich(node: LineageNode, *, levels: int | None = None,
            first: int = 2) -> tuple[Tree, list[LineageNode]]:
    """The rich tree of ``node``, built without recursion (a lineage may be deep), and the
    nodes, in the order shown, whose children it leaves out because they are ``levels`` below
    ``node``: each is labelled ``(continued in #n)``, numbered from ``first``."""
    root = Tree(label(node))
    cut: list[LineageNode] = []
    stack = [(node, root, 0)]
    while stack:
        n, branch, level = stack.pop()
        if levels is not None and level >= levels and n.children:
            branch.label = f"{branch.label} [dim](continued in #{first + len(cut)})[/]"
            cut.append(n)
            continue
        kids = [(child, branch.add(label(child)), level + 1) for child in n.children]
        stack.extend(reversed(kids))  # popped in the order shown
    return root, cut


def print_tree(node: LineageNode, width: int) -> None:
    """Print the tree of ``node`` in ``width`` columns. Every level indents four columns and
    rich drops what no longer fits, so a deeper tree goes on in more trees below: its deepest
    shown nodes say ``(continued in #n)`` and tree ``#n`` starts from that node."""
    levels = max(2, (width - 40) // 4)  # leave a label at least 40 columns
    parts: list[LineageNode] = [node]
    for number, top in enumerate(parts, start=1):
        tree, cut = to_rich(top, levels=levels, first=len(parts) + 1)
        if number > 1:
            tree.label = f"[bold]#{number}[/] {tree.label}"
        parts += cut
        console.print(tree)


def _hops(node: LineageNode) -> int:
    """Execution levels of the tree under ``node``."""
    deepest, stack = 0, [(node, 0)]
    while stack:
        n, hops = stack.pop()
        hops += n.kind == "execution"
        deepest = max(deepest, hops)
        stack += [(c, hops) for c in n.children]
    return deepest


def lineage(
    artifact: Annotated[str, typer.Argument(
        help="Artifact digest or a unique prefix of it (at least 4 hex characters, sha256: "
             "optional), name (the latest artifact of that name: a retrained model.pkl is "
             "the newest one; this site's newest when other sites made one too), the "
             "last part of a recorded path name (model.pkl for "
             "/tmp/run/model.pkl), or a path it was recorded at, whole or its last parts "
             "(out/copy.csv: found also when the same bytes were first recorded under another "
             "name).")],
    depth: Annotated[int | None, typer.Option(
        help="Stop after this many hops (steps up: an execution and the inputs it read). "
             f"Without it, a tree of more than {TREE_ENTRIES} entries is cut at the depth "
             "that fits; --json is never cut.", **COUNT)] = None,
    all_: Annotated[bool, typer.Option(
        "--all", help="Show task results (values passed between tasks in memory, such as "
                      "Prefect's) as artifacts of their own, not folded into 'via task "
                      "result'. --json always has them.")] = False,
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """Print the upstream lineage tree of ARTIFACT: what produced it, from which inputs.

    Executions are labelled with their whole id (cmf show takes it). A digest prefix or path
    part that several artifacts match is an error that names them. A tree deeper than the
    terminal is wide goes on in numbered trees below ("continued in #2"); --json nests at most
    49 steps. Without --depth, a tree of more than 200 entries (artifacts and executions, about
    four screens) shows only the steps nearest ARTIFACT that fit in 200 entries, and says how
    many executions it left out and how to see them (--depth N; cmf export --artifact writes all
    of it). A task result (a value one task passed to the next in memory) is folded: the
    task that produced it is shown right under the one that read it, as "via task result: ..."
    (--all shows the result itself).

    Example: cmf lineage model.pkl
    """
    cut: tuple[int, int] | None = None  # (steps shown, executions upstream in all)
    with get_store(store) as s:
        if json or depth is not None:
            tree = Query(s).lineage_tree(artifact, max_depth=depth)
        else:
            tree, steps = Query(s).lineage_tree_within(artifact, TREE_ENTRIES)
            if steps is not None:
                cut = steps, len(s.upstream(tree.record.id).executions)
    if json:
        try:
            print_json(tree.to_dict())
        except TooDeepError:
            raise InvalidInputError(
                f"the lineage of {artifact!r} is {_hops(tree)} steps deep, more than --json "
                f"nests (at most {JSON_HOPS}): add --depth {JSON_HOPS} and ask again from the "
                "deepest artifact, leave out --json, or read the flat graph: GET "
                "/api/v1/artifacts/<digest>/lineage (cmf serve)") from None
    elif all_:
        print_tree(tree, console.width)
    else:
        shown, folded = fold_task_values(tree)
        print_tree(shown, console.width)
        if folded:
            console.print(f"[dim]{folded} task result{'s' if folded > 1 else ''} (values "
                          "passed between tasks in memory) folded into 'via task result'; "
                          "--all shows them[/]")
    if cut is not None:
        _say_cut(tree, artifact, *cut)


def _say_cut(tree: LineageNode, ref: str, steps: int, executions: int) -> None:
    """The note under a tree cut to ``TREE_ENTRIES``: what it shows, what it left out, how
    to see the rest."""
    import shlex

    shown = len({n.record.id for n in _nodes(tree) if n.kind == "execution"})
    console.print(
        f"Shown: the {steps} step{'s' if steps > 1 else ''} nearest to {ref} ({shown} of the "
        f"{executions:,} executions upstream of it); the {executions - shown:,} further back "
        f"{'is' if executions - shown == 1 else 'are'} left out, as the whole tree has more "
        f"than the {TREE_ENTRIES} entries shown without --depth. --depth N shows N steps "
        f"(--depth {executions} all of them); "
        f"cmf export --artifact {shlex.quote(ref)} FILE writes its whole provenance to FILE.",
        markup=False, highlight=False)


def _nodes(root: LineageNode) -> list[LineageNode]:
    """Every node of the tree of ``root``."""
    found, stack = [], [root]
    while stack:
        n = stack.pop()
        found.append(n)
        stack += n.children
    return found
