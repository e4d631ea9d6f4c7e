from django.db import migrations

# Usage records are evidence for invoices: once stored they never change (ARCHITECTURE.md, UsageRecord). The
# trigger makes the database itself refuse UPDATE and DELETE, whatever code path tries.
APPEND_ONLY = """
CREATE FUNCTION billing_usage_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'usage records are append-only (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER billing_usage_append_only
    BEFORE UPDATE OR DELETE ON billing_usagerecord
    FOR EACH ROW EXECUTE FUNCTION billing_usage_append_only();
"""

REVERSE = """
DROP TRIGGER IF EXISTS billing_usage_append_only ON billing_usagerecord;
DROP FUNCTION IF EXISTS billing_usage_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunSQL(APPEND_ONLY, REVERSE)]
