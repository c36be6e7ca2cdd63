// Find the node a server-side id path names. Inside subgraphs ComfyUI's UNIQUE_ID is a path
// of node ids, "12:5" = node 5 inside the subgraph that instance node 12 runs; parseInt on it
// would silently pick root node 12. No side effects.

/** The innermost node of an id path like "7" or "12:5:3", or null if any step is missing. */
export function findNodeByPath(app, path) {
  const parts = String(path ?? "").split(":");
  let graph = app.rootGraph ?? app.graph;
  let node = null;
  for (const [i, part] of parts.entries()) {
    if (!graph || part === "") return null;
    node = graph.getNodeById(part) ?? graph.getNodeById(Number(part)) ?? null;
    if (!node) return null;
    if (i < parts.length - 1) graph = node.subgraph ?? null;
  }
  return node;
}

/** Whether any node of `type` is in the root graph or in a subgraph reachable from it. */
export function hasNodeOfType(app, type) {
  const seen = new Set();
  const search = (graph) => {
    if (!graph || seen.has(graph)) return false;
    seen.add(graph);
    return (graph.nodes ?? graph._nodes ?? []).some((node) => node.type === type || search(node.subgraph));
  };
  return search(app.rootGraph ?? app.graph);
}
