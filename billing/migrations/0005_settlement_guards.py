from django.db import migrations

# The money invariants of ARCHITECTURE.md §6, enforced by PostgreSQL itself so that no code path (a bug, a shell,
# the admin) can break them:
# - every journal entry balances per currency (checked at commit, after all its lines are in), and has lines;
# - a journal line's currency is its account's;
# - journal entries and lines, invoice and credit-note lines and voucher redemptions are append-only;
# - an invoice's, a credit note's and a statement's amounts never change once written (status may move on);
# - a closed period never changes.
GUARDS = """
CREATE FUNCTION billing_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are append-only (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER billing_journalentry_append_only BEFORE UPDATE OR DELETE ON billing_journalentry
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();
CREATE TRIGGER billing_journalline_append_only BEFORE UPDATE OR DELETE ON billing_journalline
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();
CREATE TRIGGER billing_invoiceline_append_only BEFORE UPDATE OR DELETE ON billing_invoiceline
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();
CREATE TRIGGER billing_creditnoteline_append_only BEFORE UPDATE OR DELETE ON billing_creditnoteline
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();
CREATE TRIGGER billing_voucherredemption_append_only BEFORE UPDATE OR DELETE ON billing_voucherredemption
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();

CREATE FUNCTION billing_journal_line_currency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.currency IS DISTINCT FROM (SELECT currency FROM billing_ledgeraccount WHERE id = NEW.account_id) THEN
        RAISE EXCEPTION 'journal line in % on an account kept in another currency', NEW.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER billing_journal_line_currency BEFORE INSERT ON billing_journalline
    FOR EACH ROW EXECUTE FUNCTION billing_journal_line_currency();

CREATE FUNCTION billing_journal_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    checked bigint;
    unbalanced record;
BEGIN
    -- One function for both triggers; only the branch that runs is parsed against NEW's row type.
    IF TG_TABLE_NAME = 'billing_journalentry' THEN
        checked := NEW.id;
    ELSE
        checked := NEW.entry_id;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM billing_journalline l WHERE l.entry_id = checked) THEN
        RAISE EXCEPTION 'journal entry % has no lines', checked USING ERRCODE = 'check_violation';
    END IF;
    SELECT l.currency, sum(l.amount) AS total INTO unbalanced
    FROM billing_journalline l WHERE l.entry_id = checked
    GROUP BY l.currency HAVING sum(l.amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: debits exceed credits by %',
            checked, unbalanced.currency, unbalanced.total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER billing_journal_line_balanced AFTER INSERT ON billing_journalline
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION billing_journal_entry_balanced();
CREATE CONSTRAINT TRIGGER billing_journal_entry_has_lines AFTER INSERT ON billing_journalentry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION billing_journal_entry_balanced();

CREATE FUNCTION billing_invoice_amounts_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'invoices are never deleted; void them with a credit note' USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.consumer_id, NEW.period_id, NEW.currency, NEW.subtotal, NEW.voucher_amount, NEW.total, NEW.vat_rate,
        NEW.vat_amount, NEW.issued_at)
       IS DISTINCT FROM
       (OLD.consumer_id, OLD.period_id, OLD.currency, OLD.subtotal, OLD.voucher_amount, OLD.total, OLD.vat_rate,
        OLD.vat_amount, OLD.issued_at) THEN
        RAISE EXCEPTION 'an invoice''s amounts never change; issue a credit note' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.number IS NOT NULL AND NEW.number IS DISTINCT FROM OLD.number THEN
        RAISE EXCEPTION 'an invoice number never changes' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER billing_invoice_amounts_fixed BEFORE UPDATE OR DELETE ON billing_invoice
    FOR EACH ROW EXECUTE FUNCTION billing_invoice_amounts_fixed();

CREATE FUNCTION billing_credit_note_amounts_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (NEW.invoice_id, NEW.consumer_id, NEW.period_id, NEW.number, NEW.currency, NEW.total,
                            NEW.vat_amount, NEW.issued_at)
       IS DISTINCT FROM (OLD.invoice_id, OLD.consumer_id, OLD.period_id, OLD.number, OLD.currency, OLD.total,
                         OLD.vat_amount, OLD.issued_at) THEN
        RAISE EXCEPTION 'a credit note never changes' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER billing_credit_note_amounts_fixed BEFORE UPDATE OR DELETE ON billing_creditnote
    FOR EACH ROW EXECUTE FUNCTION billing_credit_note_amounts_fixed();

CREATE FUNCTION billing_statement_amounts_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (NEW.center_id, NEW.period_id, NEW.currency, NEW.gross, NEW.fee_rate, NEW.fee,
                            NEW.payout, NEW.credit_adjustment, NEW.fee_adjustment, NEW.net_payout, NEW.issued_at)
       IS DISTINCT FROM (OLD.center_id, OLD.period_id, OLD.currency, OLD.gross, OLD.fee_rate, OLD.fee,
                         OLD.payout, OLD.credit_adjustment, OLD.fee_adjustment, OLD.net_payout, OLD.issued_at) THEN
        RAISE EXCEPTION 'a statement''s amounts never change' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER billing_statement_amounts_fixed BEFORE UPDATE OR DELETE ON billing_statement
    FOR EACH ROW EXECUTE FUNCTION billing_statement_amounts_fixed();

CREATE FUNCTION billing_closed_period_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER billing_closed_period_fixed BEFORE UPDATE OR DELETE ON billing_billingperiod
    FOR EACH ROW EXECUTE FUNCTION billing_closed_period_fixed();
"""

REVERSE = """
DROP TRIGGER IF EXISTS billing_closed_period_fixed ON billing_billingperiod;
DROP FUNCTION IF EXISTS billing_closed_period_fixed();
DROP TRIGGER IF EXISTS billing_statement_amounts_fixed ON billing_statement;
DROP FUNCTION IF EXISTS billing_statement_amounts_fixed();
DROP TRIGGER IF EXISTS billing_credit_note_amounts_fixed ON billing_creditnote;
DROP FUNCTION IF EXISTS billing_credit_note_amounts_fixed();
DROP TRIGGER IF EXISTS billing_invoice_amounts_fixed ON billing_invoice;
DROP FUNCTION IF EXISTS billing_invoice_amounts_fixed();
DROP TRIGGER IF EXISTS billing_journal_entry_has_lines ON billing_journalentry;
DROP TRIGGER IF EXISTS billing_journal_line_balanced ON billing_journalline;
DROP FUNCTION IF EXISTS billing_journal_entry_balanced();
DROP TRIGGER IF EXISTS billing_journal_line_currency ON billing_journalline;
DROP FUNCTION IF EXISTS billing_journal_line_currency();
DROP TRIGGER IF EXISTS billing_voucherredemption_append_only ON billing_voucherredemption;
DROP TRIGGER IF EXISTS billing_creditnoteline_append_only ON billing_creditnoteline;
DROP TRIGGER IF EXISTS billing_invoiceline_append_only ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_journalline_append_only ON billing_journalline;
DROP TRIGGER IF EXISTS billing_journalentry_append_only ON billing_journalentry;
DROP FUNCTION IF EXISTS billing_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_settlement")]

    operations = [migrations.RunSQL(GUARDS, REVERSE)]
