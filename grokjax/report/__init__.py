"""Interactive views of run directories: plotly figures (`views`), what they read from a
run directory finished or in progress (`rundata`), and the self-contained report.html
(`html`). plotly is an optional dependency (`pip install grokjax[dashboard]`); nothing
here is imported by `import grokjax`.
"""
