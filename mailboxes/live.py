"""Live regions: a page and its HTMX partial come from one template, and polling ends by itself."""

from django.shortcuts import render
from django_htmx.http import HttpResponseStopPolling


def render_live(request, template: str, partial: str, context: dict, live: bool, **kwargs):
    """The whole page, or for an HTMX request only ``template#partial``.

    Once nothing runs, the partial answers 286 so htmx stops polling (the markup it swaps in
    carries no trigger either, so a missed 286 behind a proxy still ends the polling).
    """
    context = {**context, "live": live}
    if not request.htmx:
        return render(request, template, context, **kwargs)
    response = render(request, f"{template}#{partial}", context, **kwargs)
    if not live:
        response.status_code = HttpResponseStopPolling.status_code
    return response
