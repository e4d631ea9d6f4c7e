from django.db import migrations

# Payments' invariants, enforced by PostgreSQL like those of 0005:
# - a closed period changes only by being locked, once (locked_at and locked_by set together); never unlocked;
# - nothing that changes a locked period's books is accepted: no journal entry, payment allocation, write-off,
#   refund, received payment or paid payout is written into it (later corrections go into the open period);
# - payment allocations and write-offs are append-only (a mistake is corrected by a new movement).
GUARDS = """
CREATE OR REPLACE FUNCTION billing_closed_period_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'closed' AND TG_OP = 'UPDATE' AND OLD.locked_at IS NULL AND NEW.locked_at IS NOT NULL
       AND NEW.locked_by <> ''
       AND (NEW.id, NEW.start, NEW."end", NEW.status, NEW.usage_cutoff, NEW.closing_started_at, NEW.closed_at,
            NEW.closed_by)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.start, OLD."end", OLD.status, OLD.usage_cutoff, OLD.closing_started_at, OLD.closed_at,
            OLD.closed_by) THEN
        RETURN NEW;  -- locking a reconciled month: the only change a closed period accepts
    END IF;
    IF OLD.status = 'closed' AND (TG_OP = 'DELETE' OR NEW IS DISTINCT FROM OLD) THEN
        RAISE EXCEPTION 'period % is closed', to_char(OLD.start AT TIME ZONE 'UTC', 'YYYY-MM')
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION billing_locked_period_refused() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    locked_label text;
BEGIN
    IF NEW.period_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT to_char(p.start AT TIME ZONE 'UTC', 'YYYY-MM') INTO locked_label
    FROM billing_billingperiod p WHERE p.id = NEW.period_id AND p.locked_at IS NOT NULL;
    IF FOUND THEN
        RAISE EXCEPTION 'period % is locked: % refused', locked_label, TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER billing_journalentry_period_lock BEFORE INSERT ON billing_journalentry
    FOR EACH ROW EXECUTE FUNCTION billing_locked_period_refused();
CREATE TRIGGER billing_paymentallocation_period_lock BEFORE INSERT ON billing_paymentallocation
    FOR EACH ROW EXECUTE FUNCTION billing_locked_period_refused();
CREATE TRIGGER billing_writeoff_period_lock BEFORE INSERT ON billing_writeoff
    FOR EACH ROW EXECUTE FUNCTION billing_locked_period_refused();
CREATE TRIGGER billing_refund_period_lock BEFORE INSERT OR UPDATE OF period_id ON billing_refund
    FOR EACH ROW EXECUTE FUNCTION billing_locked_period_refused();
CREATE TRIGGER billing_payment_period_lock BEFORE INSERT OR UPDATE OF period_id ON billing_payment
    FOR EACH ROW EXECUTE FUNCTION billing_locked_period_refused();
CREATE TRIGGER billing_payout_period_lock BEFORE INSERT OR UPDATE OF period_id ON billing_payout
    FOR EACH ROW EXECUTE FUNCTION billing_locked_period_refused();

CREATE TRIGGER billing_paymentallocation_append_only BEFORE UPDATE OR DELETE ON billing_paymentallocation
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();
CREATE TRIGGER billing_writeoff_append_only BEFORE UPDATE OR DELETE ON billing_writeoff
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();
"""

UNDO = """
DROP TRIGGER IF EXISTS billing_writeoff_append_only ON billing_writeoff;
DROP TRIGGER IF EXISTS billing_paymentallocation_append_only ON billing_paymentallocation;
DROP TRIGGER IF EXISTS billing_payout_period_lock ON billing_payout;
DROP TRIGGER IF EXISTS billing_payment_period_lock ON billing_payment;
DROP TRIGGER IF EXISTS billing_refund_period_lock ON billing_refund;
DROP TRIGGER IF EXISTS billing_writeoff_period_lock ON billing_writeoff;
DROP TRIGGER IF EXISTS billing_paymentallocation_period_lock ON billing_paymentallocation;
DROP TRIGGER IF EXISTS billing_journalentry_period_lock ON billing_journalentry;
DROP FUNCTION IF EXISTS billing_locked_period_refused();
CREATE OR REPLACE FUNCTION billing_closed_period_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'closed' AND (TG_OP = 'DELETE' OR NEW IS DISTINCT FROM OLD) THEN
        RAISE EXCEPTION 'period % is closed', to_char(OLD.start AT TIME ZONE 'UTC', 'YYYY-MM')
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_payments")]

    operations = [migrations.RunSQL(GUARDS, UNDO)]
