from datetime import timedelta

import pytest
from django.utils import timezone

from mailboxes.charts import Rate, current_rate, throughput_chart
from mailboxes.models import ProgressSample

from .conftest import add_mailbox


def test_eta_prefers_items_and_admits_ignorance():
    rate = Rate(items_per_second=2, bytes_per_second=1000)
    assert rate.eta(bytes_left=10_000, items_left=10) == timedelta(seconds=5)
    assert rate.eta(bytes_left=10_000, items_left=0) == timedelta(seconds=10)
    assert Rate().eta(bytes_left=10_000, items_left=10) is None


@pytest.mark.django_db
def test_chart_bars_per_minute_scaled_to_the_peak(project):
    mailbox = add_mailbox(project, "ann")
    now = timezone.now()
    for minutes_ago, size in ((50, 600_000), (50, 600_000), (10, 300_000), (90, 9_000_000)):
        ProgressSample.objects.create(
            mailbox=mailbox, project=project, at=now - timedelta(minutes=minutes_ago), bytes=size
        )
    chart = throughput_chart(project.progress_samples.all())
    assert chart.peak_bytes_per_second == pytest.approx(1_200_000 / 60)
    early, late = chart.bars  # the sample 90 minutes ago is outside the hour
    assert early.height == chart.height and early.y == 0
    assert late.height == pytest.approx(chart.height / 4, abs=0.1)
    assert 85 < early.x < 105 and 485 < late.x < 505  # 600 units = 60 minutes


@pytest.mark.django_db
def test_no_samples_no_chart_no_rate(project):
    assert throughput_chart(project.progress_samples.all()).is_empty
    assert current_rate(project.progress_samples.all()) == Rate()
