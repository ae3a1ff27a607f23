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


def sample(mailbox, ago: timedelta, size: int, now=None):
    at = (now or timezone.now()) - ago
    ProgressSample.objects.create(mailbox=mailbox, project=mailbox.project, at=at, bytes=size)


@pytest.mark.django_db
def test_chart_spans_the_activity_in_minute_bars_scaled_to_the_peak(project):
    mailbox = add_mailbox(project, "ann")
    now = timezone.now()
    for minutes_ago, size in ((50, 600_000), (50, 600_000), (10, 300_000), (90, 9_000_000)):
        sample(mailbox, timedelta(minutes=minutes_ago), size, now)
    chart = throughput_chart(project.progress_samples.all())
    assert chart.bucket_seconds == 60 and chart.bucket_label == "minute"
    assert chart.peak_bytes_per_second == pytest.approx(1_200_000 / 60)
    early, late = chart.bars  # the sample 90 minutes ago is outside the hour
    assert early.height == chart.height and early.y == 0
    assert late.height == pytest.approx(chart.height / 4, abs=0.1)
    # Ended 10 minutes ago: the window is the 40 minutes of activity, not the last hour.
    assert chart.span_seconds == pytest.approx(40 * 60, abs=2)
    assert early.x < 10 and late.x > 580
    assert chart.bar_width == pytest.approx(0.9 * 600 / 40, abs=0.1)


@pytest.mark.django_db
def test_a_two_minute_pass_fills_the_chart_in_five_second_bars(project):
    mailbox = add_mailbox(project, "ann")
    now = timezone.now()
    for seconds_ago in range(0, 120, 5):  # one batch every 5 s for two minutes, still going
        sample(mailbox, timedelta(seconds=seconds_ago), 50_000, now)
    chart = throughput_chart(project.progress_samples.all())
    assert chart.bucket_seconds == 5
    assert chart.span_seconds == pytest.approx(300, abs=2)  # at least five minutes
    assert chart.end >= now  # still copying: the chart ends now
    assert 23 <= len(chart.bars) <= 25  # not one or two bars of an hour
    xs = [bar.x for bar in chart.bars]
    assert min(xs) == pytest.approx(600 * 3 / 5, abs=12) and max(xs) > 580
    assert chart.peak_bytes_per_second == pytest.approx(10_000)
    assert chart.start_label == f"{timezone.localtime(chart.start):%H:%M}"
    assert chart.end_label == f"{timezone.localtime(now):%H:%M}"
    assert ":" in chart.bars[0].label and chart.bars[0].label.count(":") == 2


@pytest.mark.django_db
def test_a_longer_pass_gets_wider_buckets_and_one_query(project, django_assert_num_queries):
    mailbox = add_mailbox(project, "ann")
    now = timezone.now()
    for seconds_ago in range(0, 20 * 60, 7):
        sample(mailbox, timedelta(seconds=seconds_ago), 1000, now)
    with django_assert_num_queries(1):
        chart = throughput_chart(project.progress_samples.all())
    assert chart.bucket_seconds == 20  # 20 minutes in at most 60 bars
    assert len(chart.bars) <= 61


@pytest.mark.django_db
def test_page_labels_the_axis_ends(client, bob, project):
    mailbox = add_mailbox(project, "ann")
    now = timezone.now()
    sample(mailbox, timedelta(minutes=2), 100_000, now)
    sample(mailbox, timedelta(seconds=1), 100_000, now)
    client.force_login(bob)
    html = client.get(project.get_absolute_url()).content.decode()
    chart = throughput_chart(project.progress_samples.all())
    assert f">{chart.start_label}</time><span>per 5 s</span><time" in html
    assert "bytes per second per 5 s from" in html


@pytest.mark.django_db
def test_no_samples_no_chart_no_rate(project):
    assert throughput_chart(project.progress_samples.all()).is_empty
    assert current_rate(project.progress_samples.all()) == Rate()
