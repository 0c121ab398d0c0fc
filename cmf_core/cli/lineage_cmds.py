"""cmf lineage ARTIFACT: the upstream tree of an artifact."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.tree import Tree

from cmf_core.cli.common import COUNT, JsonOpt, StoreOpt, console, get_store, print_json, short
from cmf_core.lineage import LineageNode, Query
from cmf_core.model import Artifact


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)


def label(node: LineageNode) -> str:
    """The node's line in rich markup, the recorded names escaped (``model[red].pkl`` stays)."""
    r = node.record
    if isinstance(r, Artifact):
        text = (f"[bold]{escape(r.type)}[/] {escape(r.name)} "
                f"[dim]{short(r.id)} @{escape(r.site)}[/]")
    else:
        params = ", ".join(f"{k}={v}" for k, v in list(r.params.items())[:4])
        text = (f"[cyan]{escape(r.pipeline)}/{escape(r.stage)}[/] [dim]{r.id} "
                f"@{escape(r.site)}[/] {r.status.value}"
                + (f" ({escape(params)})" if params else ""))
    return text + (" [dim](see above)[/]" if node.seen else "")


def to_rich(node: LineageNode, tree: Tree | None = None) -> Tree:
    branch = Tree(label(node)) if tree is None else tree.add(label(node))
    for child in node.children:
        to_rich(child, branch)
    return branch


def lineage(
    artifact: Annotated[str, typer.Argument(
        help="Artifact digest or a unique prefix of it (at least 4 hex characters, sha256: "
             "optional), name (the latest artifact of that name: a retrained model.pkl is "
             "the newest one), or the last part of a recorded path name (model.pkl for "
             "/tmp/run/model.pkl).")],
    depth: Annotated[int | None, typer.Option(help="Stop after this many hops.",
                                                      **COUNT)] = None,
    store: StoreOpt = None,
    json: JsonOpt = False,
) -> None:
    """Print the upstream lineage tree of ARTIFACT: what produced it, from which inputs.

    Executions are labelled with their whole id (cmf show takes it). A digest prefix or path
    part that several artifacts match is an error that names them.

    Example: cmf lineage model.pkl
    """
    with get_store(store) as s:
        tree = Query(s).lineage_tree(artifact, max_depth=depth)
    if json:
        print_json(tree.to_dict())
    else:
        console.print(to_rich(tree))
