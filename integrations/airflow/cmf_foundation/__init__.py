"""The distribution's own name, importable; the code lives in ``cmf_core`` and the integrations.

Airflow (3.3) finds each provider's example DAGs by importing the provider's ``package-name``
with ``-`` as ``_``, here ``cmf_foundation``; without this package every Airflow process with
``[core] load_examples`` on (Airflow's default) logged an error and a traceback, "Could not load
provider module cmf_foundation". It has no ``example_dags`` folder, so Airflow adds nothing.
"""
