"""Browser pages of settlement, gathered from each area's module: consumers' invoices and centers' statements,
vouchers (sponsors and consumers), and the platform's finance workbench."""

from billing import (
    views_finance,
    views_invoices,
    views_payment_settings,
    views_payments,
    views_payouts,
    views_reconcile,
    views_reports,
    views_stripe_recon,
    views_vouchers,
)

app_name = "billing"

urlpatterns = [
    *views_invoices.urlpatterns,
    *views_vouchers.urlpatterns,
    *views_finance.urlpatterns,
    *views_payments.urlpatterns,
    *views_payment_settings.urlpatterns,
    *views_payouts.urlpatterns,
    *views_reconcile.urlpatterns,
    *views_reports.urlpatterns,
    *views_stripe_recon.urlpatterns,
]
