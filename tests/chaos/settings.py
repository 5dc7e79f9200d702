"""The test settings, plus a site-wide tuning layer from CHAOS_TUNING (JSON).

The chaos run slows the jobs down (small batches, a pause between them) so that a small seed
keeps the workers busy long enough for every kind of fault to land mid-migration. It uses the
engine's own tuning layers (site, then job, then run), nothing the engine does not offer.
"""

import json
import os

from config.settings.test import *  # noqa: F403
from config.settings.test import MIGRATIONS_WORKER

MIGRATIONS_WORKER = {
    **MIGRATIONS_WORKER,
    "TUNING": {**MIGRATIONS_WORKER["TUNING"], **json.loads(os.environ.get("CHAOS_TUNING", "{}"))},
}
