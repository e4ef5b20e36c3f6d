"""Quality metrics: feature networks, metric definitions, cached real statistics and evaluation."""
