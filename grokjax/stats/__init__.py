"""Host-side statistics of finished runs: seed summaries with censoring, phases,
survival curves, ageing, landscape analysis."""
