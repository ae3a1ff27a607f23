"""The admin lists of DNS records, checks and results open for staff."""

import pytest
from django.urls import reverse

from dnscheck.services import check_domain

pytestmark = pytest.mark.django_db


def test_admin_lists(client, django_user_model, domain):
    check_domain(domain)
    staff = django_user_model.objects.create_superuser("root", "root@example.org", "x")
    client.force_login(staff)
    shown = {
        "dnsrecord": "contoso.test",
        "dnscheck": "contoso.test",
        "dnsresult": domain.nameservers,
    }
    for model, text in shown.items():
        response = client.get(reverse(f"admin:dnscheck_{model}_changelist"))
        assert response.status_code == 200, model
        assert text in response.content.decode(), model
