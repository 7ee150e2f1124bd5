"""The web UI: the whole loop — runs, data, models, deployments, monitoring, pipelines,
lineage, labelling — as server-rendered pages (Jinja2, htmx, uPlot, Cytoscape).

``mloop ui`` serves it on loopback over the local project (:func:`app.standalone`);
``mloop server`` mounts it at ``/ui`` behind its tokens, sessions and roles.
"""
