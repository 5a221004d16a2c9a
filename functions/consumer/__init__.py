"""The entitlements consumer library, for the Dataface app and every downstream service.

    from functions.consumer import EntitlementsCache, ReadApiClient, follow

    cache = EntitlementsCache()
    stream = follow(project, subscription, cache)        # 1. subscribe first
    cache.load(ReadApiClient(url, token).every())        # 2. then the snapshot
    cache.can("acct_42", "slack_alerts"); cache.limit("acct_42", "seats")

The order matters: changes committed after the snapshot arrive on the subscription, and
the cache keeps the highest version per customer whichever way a state arrives, so the
two sources merge by one rule (README, "Downstream"). Only `follow` needs the Pub/Sub
client library, and it imports it when called.
"""

from functions.consumer.cache import Applied, EntitlementsCache
from functions.consumer.follow import follow
from functions.consumer.read_client import ReadApiClient, ReadApiError

__all__ = ["Applied", "EntitlementsCache", "ReadApiClient", "ReadApiError", "follow"]
