"""The data jobs over the assets app's tables, one module each; the engine imports every module
of an app's `jobs` package (`migrations_worker.apps.import_job_modules`), which registers them."""
