//! Invariant checks against the bench database, run after every scenario:
//! - no oversell: `0 <= reserved <= on_hand` on every stock row;
//! - `reserved` of every row = the sum of its PENDING holds' lines;
//! - the ledger: per row, the movements sum to `on_hand` and to `reserved`;
//! - orders: a settled CONFIRMED order's hold is COMMITTED.
//!
//! This reads both schemas, which no service does: it is the auditor's view.

use sqlx::PgPool;

/// One check and how many rows break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub rows: i64,
}

const CHECKS: [(&str, &str); 4] = [
    (
        "oversold or negative stock rows",
        "select count(*) from inventory.stock_levels where reserved < 0 or reserved > on_hand",
    ),
    (
        "rows whose reserved differs from their pending holds",
        "select count(*) from inventory.stock_levels sl
           left join (select ri.stock_level_id, sum(ri.quantity) q
                        from inventory.reservation_items ri
                        join inventory.reservations r on r.id = ri.reservation_id
                       where r.status = 'PENDING' group by 1) h on h.stock_level_id = sl.id
          where sl.reserved <> coalesce(h.q, 0)",
    ),
    (
        "rows whose ledger does not sum to on_hand/reserved",
        "select count(*) from inventory.stock_levels sl
           left join (select stock_level_id, sum(oh) oh, sum(rs) rs
                        from (select stock_level_id, on_hand_delta oh, reserved_delta rs
                                from inventory.movements
                              union all -- what retention removed
                              select stock_level_id, on_hand, reserved from inventory.ledger_base) l
                        group by 1) m on m.stock_level_id = sl.id
          where sl.on_hand <> coalesce(m.oh, 0) or sl.reserved <> coalesce(m.rs, 0)",
    ),
    (
        "settled CONFIRMED orders whose hold is not COMMITTED",
        "select count(*) from orders.orders o
           left join inventory.reservations r on r.id = o.reservation_id
          where o.status = 'CONFIRMED' and o.next_action is null
            and r.status is distinct from 'COMMITTED'",
    ),
];

/// Runs every check.
pub async fn check(pool: &PgPool) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::with_capacity(CHECKS.len());
    for (check, sql) in CHECKS {
        // The orders check needs the order server's schema (absent in an inventory-only run).
        if sql.contains("orders.orders") && !orders_schema(pool).await? {
            findings.push(Finding { check, rows: 0 });
            continue;
        }
        let rows: i64 = sqlx::query_scalar(sql).fetch_one(pool).await?;
        findings.push(Finding { check, rows });
    }
    Ok(findings)
}

async fn orders_schema(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar::<_, bool>("select to_regclass('orders.orders') is not null")
        .fetch_one(pool)
        .await?)
}

/// Total violations over the findings.
pub fn total(findings: &[Finding]) -> u64 {
    findings.iter().map(|f| u64::try_from(f.rows).unwrap_or(0)).sum()
}

/// One line per finding: `ok  check` or `FAIL (n)  check`.
pub fn describe(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            if f.rows == 0 {
                format!("  ok        {}", f.check)
            } else {
                format!("  FAIL {:>4} {}", f.rows, f.check)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_add_up_and_read_well() {
        let f = [
            Finding { check: "a", rows: 0 },
            Finding { check: "b", rows: 3 },
            Finding { check: "c", rows: 1 },
        ];
        assert_eq!(total(&f), 4);
        assert_eq!(describe(&f), "  ok        a\n  FAIL    3 b\n  FAIL    1 c");
    }
}
