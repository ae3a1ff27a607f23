"""Live regions: a page and its HTMX partial come from one template, and polling ends by itself."""

from django.shortcuts import render
from django_htmx.http import HttpResponseStopPolling


def render_live(
    request, template: str, partial: str, context: dict, live: bool, idle_poll: str = "", **kwargs
):
    """The whole page, or for an HTMX request only ``template#partial``.

    Once nothing runs, the partial answers 286 so htmx stops polling (the markup it swaps in
    carries no trigger either, so a missed 286 behind a proxy still ends the polling). With
    ``idle_poll`` (an htmx interval, "20s") a page keeps polling that slowly while nothing runs,
    to notice work started elsewhere; its template reads ``idle_poll`` for the interval.
    """
    context = {**context, "live": live, "idle_poll": idle_poll}
    if not request.htmx:
        return render(request, template, context, **kwargs)
    response = render(request, f"{template}#{partial}", context, **kwargs)
    if not live and not idle_poll:
        response.status_code = HttpResponseStopPolling.status_code
    return response
