"""The cepage model service (BentoML); never imports the train package or calls MLflow's server."""
