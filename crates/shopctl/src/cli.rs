//! The command tree: global flags, one subcommand group per service, and the parsers of
//! item arguments (`SKU=QTY[@WAREHOUSE]`).
//!
//! Inventory commands sit at the top level (`stock ...`, `reserve`, `commit`, ...); order
//! commands will join them as one more group (`order create|show|list|cancel`) with its own
//! `--order-url`, without touching these.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use security::Secret;
use security::tls::{self, ClientTls, PemFile};

use crate::error::CliError;

/// `shopctl`: talk to the shop's gRPC services from a terminal.
#[derive(Debug, Parser)]
#[command(
    name = "shopctl",
    version,
    about = "Talk to the shop's gRPC services from a terminal.",
    long_about = "Talk to the shop's gRPC services from a terminal.\n\n\
        Exit codes: 0 success; 1 server unreachable or internal error; 2 invalid input, \
        not found or failed precondition; 3 reservation refused (success=false)."
)]
pub struct Cli {
    /// Flags every subcommand accepts.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// URL of the inventory service.
    #[arg(
        long,
        env = "INVENTORY_SERVICE_URL",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub inventory_url: String,

    /// URL of the order service.
    #[arg(
        long,
        env = "ORDER_SERVICE_URL",
        default_value = "http://127.0.0.1:50052",
        global = true
    )]
    pub order_url: String,

    /// Print the response as JSON (proto3 field names in lowerCamelCase) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Deadline of every call, in milliseconds (`events watch`: of opening its stream, which
    /// then lasts as long as it is read).
    #[arg(
        long,
        default_value_t = 5000,
        global = true,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub timeout_ms: u64,

    // `--tls-*`, not `--key`: `--key` is already the idempotency key of `order place` and
    // `stock adjust`.
    /// PEM CA bundle trusted for `https://` URLs (default: the system's CA store).
    #[arg(long, env = "SHOPCTL_CA_PATH", value_name = "FILE", global = true)]
    pub tls_ca: Option<PathBuf>,

    /// PEM client certificate for servers that require mutual TLS (with --tls-key).
    #[arg(long, env = "SHOPCTL_CERT_PATH", value_name = "FILE", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "SHOPCTL_KEY_PATH", value_name = "FILE", global = true)]
    pub tls_key: Option<PathBuf>,

    /// Admin token sent as `authorization: Bearer <token>` to the inventory service (needed
    /// by `stock set`, `stock adjust` and `stock policy` when the server guards them) and to
    /// the order service by the operator commands only (`order parked`, `order resolve`,
    /// `events watch --service order`). Falls back to ADMIN_TOKEN.
    // hide_env_values: `--help` would otherwise print the token taken from the env.
    #[arg(
        long,
        env = "SHOPCTL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        global = true
    )]
    pub token: Option<Secret>,
}

impl GlobalArgs {
    /// The per-call deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// TLS for `https://` URLs: --tls-ca (else the system's CAs) and --tls-cert/--tls-key.
    pub fn tls(&self) -> Result<ClientTls, CliError> {
        let identity = tls::pair(
            self.tls_cert.as_deref().map(|p| PemFile::new("--tls-cert", p)),
            self.tls_key.as_deref().map(|p| PemFile::new("--tls-key", p)),
            ("--tls-cert", "--tls-key"),
        );
        let ca = self.tls_ca.as_deref().map(|p| PemFile::new("--tls-ca", p));
        identity
            .and_then(|identity| ClientTls::from_files(ca, identity))
            .map_err(|e| CliError::Usage(e.to_string()))
    }

    /// The admin token: --token / SHOPCTL_TOKEN, else ADMIN_TOKEN.
    pub fn admin_token(&self) -> Option<Secret> {
        self.token.clone().or_else(|| {
            std::env::var("ADMIN_TOKEN").ok().filter(|t| !t.trim().is_empty()).map(Secret::new)
        })
    }
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stock items: set, adjust, policy, show, list, low, check.
    #[command(subcommand)]
    Stock(StockCommand),

    /// Hold stock for a reference, all items or none.
    Reserve(ReserveArgs),

    /// Commit a pending reservation: the held units leave stock.
    Commit(ReservationIdArg),

    /// Cancel a pending reservation: the held units become available again.
    Cancel(ReservationIdArg),

    /// Read reservations.
    #[command(subcommand)]
    Reservation(ReservationCommand),

    /// Verify the whole inventory ledger now: every movement, every checkpoint (admin RPC;
    /// it reads all of history, so raise --timeout-ms to match).
    VerifyLedger,

    /// Orders: place, show, list, cancel; parked and resolve for operators.
    #[command(subcommand)]
    Order(OrderCommand),

    /// A service's event log: watch it as it grows.
    #[command(subcommand)]
    Events(EventsCommand),
}

/// `shopctl events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print each event as it happens (WatchEvents), one line each (NDJSON with --json), until
    /// --count events or Ctrl-C. The order service's log is an operator RPC (sends the admin
    /// token); a stream that ends in an error names the last position, to resume with --from.
    Watch(WatchArgs),
}

/// Arguments of `events watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Whose log: the inventory's (stock, holds, returns) or the order service's.
    #[arg(long, value_enum, default_value_t = EventService::Inventory)]
    pub service: EventService,

    /// The last position already handled: every event after it, then new ones [default:
    /// only events from now on].
    #[arg(long = "from", value_name = "POSITION")]
    pub from_position: Option<u64>,

    /// Only events of this type, e.g. stock.changed or stock.low (repeatable) [default: every
    /// type].
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,

    /// Exit 0 after this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// `events watch --service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventService {
    /// `inventory.v1.InventoryService` at --inventory-url.
    Inventory,
    /// `order.v1.OrderService` at --order-url (operator RPC: sends the admin token).
    Order,
}

/// `shopctl order ...`
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Place an order (CreateOrder): reserve stock, charge, confirm.
    Place(PlaceArgs),

    /// Show one order.
    Show {
        /// The order's id.
        order_id: String,
    },

    /// List a user's orders, newest first.
    List(OrderListArgs),

    /// Return units of a confirmed order (ReturnOrder): the stock goes back, the units'
    /// price is refunded. No --item: everything not yet returned.
    Return(ReturnArgs),

    /// Cancel an order not yet confirmed: releases its hold (a confirmed order is returned
    /// instead: `order return`).
    Cancel {
        /// The order's id.
        order_id: String,

        /// Why (kept with the order).
        #[arg(long)]
        reason: Option<String>,
    },

    /// Orders parked for an operator, longest parked first (operator RPC: sends the admin
    /// token).
    Parked {
        /// At most this many (server default 50, at most 500).
        #[arg(long)]
        limit: Option<i32>,
    },

    /// Resolve a parked order: retry it, or record what you established (operator RPC:
    /// sends the admin token). Written to the order's saga history.
    Resolve(ResolveArgs),
}

/// Arguments of `order resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The parked order's id.
    pub order_id: String,

    /// What to do: retry the step now, or record what was settled by hand.
    #[arg(long, value_enum)]
    pub resolution: ResolutionArg,

    /// What you did or found (kept in the saga history).
    #[arg(long)]
    pub note: String,
}

/// `order resolve --resolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResolutionArg {
    /// Retry the parked step now (after fixing what made it fail).
    Retry,
    /// The money was returned by hand: the order ends cancelled and refunded.
    RefundedByHand,
    /// The hold or stock was settled by hand: the saga goes on from the next step.
    StockSettledByHand,
    /// Nothing was charged: the order ends cancelled.
    Cancelled,
}

/// Arguments of `order place`.
#[derive(Debug, Args)]
pub struct PlaceArgs {
    /// The ordering user.
    #[arg(long, value_name = "U")]
    pub user: String,

    /// Currency of the order.
    #[arg(long, default_value = "EUR")]
    pub currency: String,

    /// Payment method (the payment stand-in declines `card_decline`).
    #[arg(long, default_value = "card")]
    pub payment: String,

    /// Idempotency key: the same user and key place one order, however often repeated.
    #[arg(long = "key", value_name = "IDEMPOTENCY_KEY")]
    pub key: Option<String>,

    /// Items to order.
    #[arg(required = true, value_name = "PRODUCT=QTY[:VARIANT]", value_parser = parse_order_item)]
    pub items: Vec<OrderItemSpec>,
}

/// Arguments of `order return`.
#[derive(Debug, Args)]
pub struct ReturnArgs {
    /// The confirmed order's id.
    pub order_id: String,

    /// Why the units come back (kept with the return).
    #[arg(long)]
    pub reason: String,

    /// Idempotency key: the same order, key and items make one return, however often
    /// repeated (repeating it also retries a return that needed an operator).
    #[arg(long = "key", value_name = "IDEMPOTENCY_KEY")]
    pub key: String,

    /// Units to return, one SKU per --item; `:no-restock` for damaged goods (refunded, not
    /// put back on hand). None: everything not yet returned.
    #[arg(long = "item", value_name = "SKU=QTY[:no-restock]", value_parser = parse_return_item)]
    pub items: Vec<ReturnItemSpec>,
}

/// One `SKU=QTY[:no-restock]` argument of `order return`; the server judges the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnItemSpec {
    pub sku: String,
    pub quantity: i32,
    pub do_not_restock: bool,
}

/// Parses `SKU=QTY[:no-restock]`.
pub fn parse_return_item(s: &str) -> Result<ReturnItemSpec, ItemSpecError> {
    let Some((sku, rest)) = s.split_once('=') else {
        return Err(ItemSpecError(format!("expected SKU=QTY[:no-restock], got '{s}'")));
    };
    if sku.is_empty() {
        return Err(ItemSpecError(format!("missing SKU before '=' in '{s}'")));
    }
    let (qty, do_not_restock) = match rest.split_once(':') {
        Some((qty, "no-restock")) => (qty, true),
        Some((_, flag)) => {
            return Err(ItemSpecError(format!(
                "unknown flag '{flag}' in '{s}' (only ':no-restock')"
            )));
        }
        None => (rest, false),
    };
    let quantity = qty
        .trim()
        .parse::<i32>()
        .map_err(|_| ItemSpecError(format!("quantity '{qty}' in '{s}' is not a whole number")))?;
    Ok(ReturnItemSpec { sku: sku.to_owned(), quantity, do_not_restock })
}

/// Arguments of `order list`.
#[derive(Debug, Args)]
pub struct OrderListArgs {
    /// Whose orders.
    #[arg(long, value_name = "U")]
    pub user: String,

    /// Orders per page [default: the server's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub page_size: Option<i32>,
}

/// One `PRODUCT=QTY[:VARIANT]` argument of `order place`; the server judges the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItemSpec {
    /// The product id.
    pub product_id: String,
    /// Ordered units.
    pub quantity: i32,
    /// The variant, when one was named after `:`.
    pub variant_id: Option<String>,
}

/// Value parser of `order place` items: `PRODUCT=QTY[:VARIANT]`; the product ends at the
/// last `=`.
pub fn parse_order_item(s: &str) -> Result<OrderItemSpec, ItemSpecError> {
    let Some((product, rest)) = s.rsplit_once('=') else {
        return Err(ItemSpecError(format!("expected PRODUCT=QTY[:VARIANT], got '{s}'")));
    };
    if product.is_empty() {
        return Err(ItemSpecError(format!("missing product before '=' in '{s}'")));
    }
    let (qty, variant_id) = match rest.split_once(':') {
        Some((_, "")) => {
            return Err(ItemSpecError(format!("missing variant after ':' in '{s}'")));
        }
        Some((qty, variant)) => (qty, Some(variant.to_owned())),
        None => (rest, None),
    };
    let quantity = qty
        .trim()
        .parse::<i32>()
        .map_err(|_| ItemSpecError(format!("quantity '{qty}' in '{s}' is not a whole number")))?;
    Ok(OrderItemSpec { product_id: product.to_owned(), quantity, variant_id })
}

/// `shopctl stock ...`
#[derive(Debug, Subcommand)]
pub enum StockCommand {
    /// Set on_hand of a SKU in one warehouse, creating the item as needed.
    Set(SetArgs),

    /// Change on_hand of a SKU by DELTA (negative to remove), with a reason.
    Adjust(AdjustArgs),

    /// Set the policy of a SKU in one warehouse, with a reason.
    ///
    /// Safety stock: units never offered for sale (available is on_hand - reserved - safety
    /// stock + backorder limit). Low-stock threshold: the row is low while its units in stock
    /// are below it (listed by `stock low`, a stock.low event when it goes below). Backorder
    /// limit: units that may be sold beyond on_hand; restock date: when more is expected
    /// (pre-orders). A value not given stays as it is; give at least one. An admin call, as
    /// `stock adjust`.
    Policy(PolicyArgs),

    /// Show one item with its per-warehouse levels (safety stock, low-stock threshold, low).
    Show {
        /// The item's SKU.
        sku: String,
    },

    /// List items by SKU.
    List(ListArgs),

    /// List the stock rows below their low-stock threshold, by SKU then warehouse (every
    /// page).
    Low(LowArgs),

    /// Check whether quantities are available (summed over warehouses).
    Check {
        /// Items to check.
        #[arg(required = true, value_name = "SKU=QTY", value_parser = parse_check_item)]
        items: Vec<ItemSpec>,
    },
}

/// Arguments of `stock set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The item's SKU.
    pub sku: String,

    /// Units on hand in the warehouse.
    #[arg(value_parser = clap::value_parser!(i32).range(0..))]
    pub on_hand: i32,

    /// Product id of the item [default: the item's, else the SKU].
    #[arg(long = "product", value_name = "ID")]
    pub product_id: Option<String>,

    /// Variant id of the item [default: the item's, else none].
    #[arg(long = "variant", value_name = "ID")]
    pub variant_id: Option<String>,

    /// Warehouse [default: the server's "default"].
    #[arg(long, value_name = "W")]
    pub warehouse: Option<String>,
}

/// Arguments of `stock adjust`.
#[derive(Debug, Args)]
pub struct AdjustArgs {
    /// The item's SKU.
    pub sku: String,

    /// Change of on_hand, e.g. 5 or -3.
    #[arg(allow_negative_numbers = true)]
    pub delta: i32,

    /// Why (kept in the stock ledger).
    #[arg(long)]
    pub reason: String,

    /// Warehouse [default: the server's "default"].
    #[arg(long, value_name = "W")]
    pub warehouse: Option<String>,

    /// Idempotency key: an adjustment with the same key applies once.
    #[arg(long = "key", value_name = "IDEMPOTENCY_KEY")]
    pub idempotency_key: Option<String>,
}

/// Arguments of `stock policy`: at least one of `--safety-stock` and
/// `--low-stock-threshold`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("policy")
        .args(["safety_stock", "low_stock_threshold", "backorder_limit", "restock_date"])
        .required(true)
        .multiple(true)
))]
pub struct PolicyArgs {
    /// The item's SKU.
    pub sku: String,

    /// Warehouse [default: the server's "default"].
    #[arg(long, value_name = "W")]
    pub warehouse: Option<String>,

    /// Units never offered for sale: available is on_hand - reserved - safety stock
    /// [default: unchanged].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    pub safety_stock: Option<i32>,

    /// The row is low while its available units are below N; 0 removes the threshold
    /// [default: unchanged].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    pub low_stock_threshold: Option<i32>,

    /// Units that may be sold beyond on_hand (backorders); 0: none [default: unchanged].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    pub backorder_limit: Option<i32>,

    /// When the next delivery is expected, YYYY-MM-DD, returned with backordered units
    /// (pre-orders); "" clears it [default: unchanged].
    #[arg(long, value_name = "DATE")]
    pub restock_date: Option<String>,

    /// Why (kept with the change).
    #[arg(long)]
    pub reason: String,
}

/// Arguments of `stock low`.
#[derive(Debug, Args)]
pub struct LowArgs {
    /// Only this warehouse's rows [default: every warehouse].
    #[arg(long, value_name = "W")]
    pub warehouse: Option<String>,

    /// Rows per page asked of the server (every page is listed) [default: the server's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub page_size: Option<i32>,
}

/// Arguments of `stock list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Items per page [default: the server's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub page_size: Option<i32>,

    /// Follow the pages to the end instead of showing the first one.
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `reserve`.
#[derive(Debug, Args)]
pub struct ReserveArgs {
    /// Reference the hold belongs to, e.g. an order id; the same reference gets the same hold.
    #[arg(long = "ref", value_name = "REF")]
    pub reference_id: String,

    /// Kind of the reference.
    #[arg(long = "ref-type", value_name = "TYPE", default_value = "ORDER")]
    pub reference_type: String,

    /// Minutes until the hold expires [default: the server's, 30].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub minutes: Option<i32>,

    /// Items to hold; without @WAREHOUSE the server picks the warehouses.
    #[arg(required = true, value_name = "SKU=QTY[@WAREHOUSE]", value_parser = parse_reserve_item)]
    pub items: Vec<ItemSpec>,
}

/// A reservation id argument.
#[derive(Debug, Args)]
pub struct ReservationIdArg {
    /// The reservation's id.
    pub reservation_id: String,
}

/// `shopctl reservation ...`
#[derive(Debug, Subcommand)]
pub enum ReservationCommand {
    /// Show a reservation: status, expiry and held items.
    Show(ReservationIdArg),
}

/// One `SKU=QTY[@WAREHOUSE]` argument. Only the syntax is checked here; the server judges
/// the values (a zero quantity comes back as a field violation naming the item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSpec {
    /// The SKU (or, for reserve, the item id).
    pub sku: String,
    /// Requested units.
    pub quantity: i32,
    /// Warehouse, when one was named after `@`.
    pub warehouse: Option<String>,
}

/// Why an item argument did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSpecError(String);

impl fmt::Display for ItemSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ItemSpecError {}

impl FromStr for ItemSpec {
    type Err = ItemSpecError;

    /// Parses `SKU=QTY` or `SKU=QTY@WAREHOUSE`; the SKU ends at the last `=`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((sku, rest)) = s.rsplit_once('=') else {
            return Err(ItemSpecError(format!("expected SKU=QTY, got '{s}'")));
        };
        if sku.is_empty() {
            return Err(ItemSpecError(format!("missing SKU before '=' in '{s}'")));
        }
        let (qty, warehouse) = match rest.split_once('@') {
            Some((_, "")) => {
                return Err(ItemSpecError(format!("missing warehouse after '@' in '{s}'")));
            }
            Some((qty, wh)) => (qty, Some(wh.to_owned())),
            None => (rest, None),
        };
        let quantity = qty.trim().parse::<i32>().map_err(|_| {
            ItemSpecError(format!("quantity '{qty}' in '{s}' is not a whole number"))
        })?;
        Ok(Self { sku: sku.to_owned(), quantity, warehouse })
    }
}

/// Value parser of `reserve` items: `SKU=QTY[@WAREHOUSE]`.
pub fn parse_reserve_item(s: &str) -> Result<ItemSpec, ItemSpecError> {
    s.parse()
}

/// Value parser of `stock check` items: `SKU=QTY` (availability sums every warehouse).
pub fn parse_check_item(s: &str) -> Result<ItemSpec, ItemSpecError> {
    let spec: ItemSpec = s.parse()?;
    if spec.warehouse.is_some() {
        return Err(ItemSpecError(format!(
            "'{s}': check takes SKU=QTY; availability is summed over all warehouses"
        )));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn spec(sku: &str, quantity: i32, warehouse: Option<&str>) -> ItemSpec {
        ItemSpec { sku: sku.into(), quantity, warehouse: warehouse.map(Into::into) }
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[tokio::test]
    async fn the_token_never_shows() {
        let cli = Cli::try_parse_from([
            "shopctl",
            "--token",
            "s3cret-admin-tok",
            "--inventory-url",
            "https://127.0.0.1:1",
            "stock",
            "show",
            "WIDGET",
        ])
        .expect("parse");
        assert_eq!(cli.global.admin_token().expect("token").expose(), "s3cret-admin-tok");
        let debug = format!("{cli:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let inventory = crate::inventory::Inventory::new(&cli.global).expect("client");
        let debug = format!("{inventory:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("SHOPCTL_TOKEN") && help.contains("SHOPCTL_CA_PATH"), "{help}");
    }

    #[test]
    fn tls_flags_are_checked() {
        let parse = |args: &[&str]| {
            let mut all = vec!["shopctl"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["stock", "list"]);
            Cli::try_parse_from(all).expect("parse")
        };
        let error = parse(&["--tls-cert", "c.pem"]).global.tls().expect_err("no key");
        assert!(error.report().contains("--tls-key"), "{}", error.report());
        let error = parse(&["--tls-ca", "/nonexistent/ca.pem"]).global.tls().expect_err("no file");
        assert!(error.report().contains("/nonexistent/ca.pem"), "{}", error.report());
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn item_specs_parse() {
        assert_eq!("MUG=2".parse(), Ok(spec("MUG", 2, None)));
        assert_eq!("MUG=2@east".parse(), Ok(spec("MUG", 2, Some("east"))));
        assert_eq!("A=B=3".parse(), Ok(spec("A=B", 3, None)));
        assert_eq!("MUG=0".parse(), Ok(spec("MUG", 0, None)));
        assert_eq!("MUG=-1@w".parse(), Ok(spec("MUG", -1, Some("w"))));
        assert_eq!("team@x=1".parse(), Ok(spec("team@x", 1, None)));
    }

    #[test]
    fn malformed_item_specs_say_why() {
        for (input, needle) in [
            ("MUG", "expected SKU=QTY"),
            ("=2", "missing SKU"),
            ("MUG=", "not a whole number"),
            ("MUG=two", "not a whole number"),
            ("MUG=2@", "missing warehouse"),
            ("MUG=99999999999", "not a whole number"),
        ] {
            let err = input.parse::<ItemSpec>().expect_err(input);
            assert!(err.to_string().contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn check_items_take_no_warehouse() {
        assert_eq!(parse_check_item("MUG=2"), Ok(spec("MUG", 2, None)));
        assert!(parse_check_item("MUG=2@east").is_err());
    }

    fn order_item(product: &str, quantity: i32, variant: Option<&str>) -> OrderItemSpec {
        OrderItemSpec { product_id: product.into(), quantity, variant_id: variant.map(Into::into) }
    }

    #[test]
    fn order_items_parse() {
        assert_eq!(parse_order_item("prod-mug=1"), Ok(order_item("prod-mug", 1, None)));
        assert_eq!(
            parse_order_item("prod-tshirt=2:red-m"),
            Ok(order_item("prod-tshirt", 2, Some("red-m")))
        );
        assert_eq!(parse_order_item("a=b=3:v:w"), Ok(order_item("a=b", 3, Some("v:w"))));
        assert_eq!(parse_order_item("p=0"), Ok(order_item("p", 0, None)));
        assert_eq!(parse_order_item("p= 4 :v"), Ok(order_item("p", 4, Some("v"))));
    }

    #[test]
    fn malformed_order_items_say_why() {
        for (input, needle) in [
            ("prod-mug", "expected PRODUCT=QTY"),
            ("=2", "missing product"),
            ("p=", "not a whole number"),
            ("p=two", "not a whole number"),
            ("p=:red", "not a whole number"),
            ("p=2:", "missing variant"),
            ("p=2@east", "not a whole number"),
        ] {
            let err = parse_order_item(input).expect_err(input);
            assert!(err.to_string().contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn order_place_takes_defaults_and_items() {
        let cli = Cli::try_parse_from([
            "shopctl",
            "--order-url",
            "127.0.0.1:1",
            "order",
            "place",
            "--user",
            "u1",
            "--key",
            "k1",
            "prod-mug=1",
            "prod-tshirt=2:red-m",
        ])
        .unwrap();
        assert_eq!(cli.global.order_url, "127.0.0.1:1");
        let Command::Order(OrderCommand::Place(args)) = cli.command else { panic!("not place") };
        assert_eq!(args.user, "u1");
        assert_eq!(args.currency, "EUR");
        assert_eq!(args.payment, "card");
        assert_eq!(args.key.as_deref(), Some("k1"));
        assert_eq!(
            args.items,
            vec![order_item("prod-mug", 1, None), order_item("prod-tshirt", 2, Some("red-m"))]
        );
        assert!(Cli::try_parse_from(["shopctl", "order", "place", "p=1"]).is_err());
        assert!(Cli::try_parse_from(["shopctl", "order", "place", "--user", "u"]).is_err());
    }

    #[test]
    fn events_watch_defaults_to_the_inventory_from_now() {
        let cli = Cli::try_parse_from(["shopctl", "events", "watch"]).unwrap();
        let Command::Events(EventsCommand::Watch(args)) = cli.command else { panic!("not watch") };
        assert_eq!(args.service, EventService::Inventory);
        assert_eq!((args.from_position, args.count), (None, None));
        assert!(args.types.is_empty());
        let cli = Cli::try_parse_from([
            "shopctl",
            "events",
            "watch",
            "--service",
            "order",
            "--from",
            "0",
            "--type",
            "order.created",
            "--type",
            "order.confirmed",
            "--count",
            "3",
            "--json",
        ])
        .unwrap();
        assert!(cli.global.json);
        let Command::Events(EventsCommand::Watch(args)) = cli.command else { panic!("not watch") };
        assert_eq!(args.service, EventService::Order);
        assert_eq!((args.from_position, args.count), (Some(0), Some(3)));
        assert_eq!(args.types, ["order.created", "order.confirmed"]);
        for bad in [&["--count", "0"][..], &["--from", "-1"], &["--service", "payment"]] {
            let mut all = vec!["shopctl", "events", "watch"];
            all.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&all).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn adjust_takes_a_negative_delta() {
        let cli = Cli::try_parse_from(["shopctl", "stock", "adjust", "MUG", "-3", "--reason", "x"])
            .unwrap();
        let Command::Stock(StockCommand::Adjust(args)) = cli.command else {
            panic!("not adjust: {:?}", cli.command);
        };
        assert_eq!(args.delta, -3);
        assert_eq!(args.reason, "x");
    }

    #[test]
    fn reserve_collects_items_and_global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "shopctl",
            "reserve",
            "--ref",
            "demo-1",
            "MUG=2",
            "TEE=1@east",
            "--json",
            "--timeout-ms",
            "250",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.timeout(), Duration::from_millis(250));
        let Command::Reserve(args) = cli.command else { panic!("not reserve") };
        assert_eq!(args.reference_id, "demo-1");
        assert_eq!(args.reference_type, "ORDER");
        assert_eq!(args.minutes, None);
        assert_eq!(args.items, vec![spec("MUG", 2, None), spec("TEE", 1, Some("east"))]);
    }

    #[test]
    fn reserve_needs_a_reference_and_items() {
        assert!(Cli::try_parse_from(["shopctl", "reserve", "MUG=1"]).is_err());
        assert!(Cli::try_parse_from(["shopctl", "reserve", "--ref", "r"]).is_err());
        assert!(Cli::try_parse_from(["shopctl", "reserve", "--ref", "r", "MUG"]).is_err());
    }

    fn policy(args: &[&str]) -> Result<PolicyArgs, clap::Error> {
        let mut all = vec!["shopctl", "stock", "policy"];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all)?;
        let Command::Stock(StockCommand::Policy(args)) = cli.command else {
            panic!("not policy: {:?}", cli.command);
        };
        Ok(args)
    }

    #[test]
    fn policy_takes_either_value_or_both() {
        let args = policy(&["MUG", "--safety-stock", "5", "--reason", "keep 5 back"]).unwrap();
        assert_eq!(args.sku, "MUG");
        assert_eq!((args.safety_stock, args.low_stock_threshold), (Some(5), None));
        assert_eq!((args.warehouse, args.reason.as_str()), (None, "keep 5 back"));
        let args = policy(&["MUG", "--low-stock-threshold", "0", "--reason", "r"]).unwrap();
        assert_eq!((args.safety_stock, args.low_stock_threshold), (None, Some(0)));
        let args = policy(&[
            "MUG",
            "--warehouse",
            "east",
            "--safety-stock",
            "0",
            "--low-stock-threshold",
            "4",
            "--reason",
            "r",
        ])
        .unwrap();
        assert_eq!(args.warehouse.as_deref(), Some("east"));
        assert_eq!((args.safety_stock, args.low_stock_threshold), (Some(0), Some(4)));
    }

    #[test]
    fn policy_needs_a_value_and_a_reason() {
        let err = policy(&["MUG", "--reason", "r"]).expect_err("no value");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let text = err.to_string();
        assert!(
            text.contains("--safety-stock") && text.contains("--low-stock-threshold"),
            "{text}"
        );
        assert!(policy(&["MUG", "--safety-stock", "1"]).is_err(), "no reason");
        assert!(policy(&["--safety-stock", "1", "--reason", "r"]).is_err(), "no SKU");
    }

    #[test]
    fn policy_refuses_negative_values() {
        for bad in [
            &["--safety-stock", "-1"][..],
            &["--safety-stock=-1"],
            &["--low-stock-threshold", "-2"],
            &["--low-stock-threshold=-2"],
            &["--safety-stock", "many"],
            &["--safety-stock", "99999999999"],
        ] {
            let mut args = vec!["MUG", "--reason", "r"];
            args.extend_from_slice(bad);
            assert!(policy(&args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn low_takes_a_warehouse_and_the_global_json_flag() {
        let cli = Cli::try_parse_from(["shopctl", "stock", "low"]).unwrap();
        let Command::Stock(StockCommand::Low(args)) = cli.command else { panic!("not low") };
        assert_eq!((args.warehouse, args.page_size), (None, None));
        let cli = Cli::try_parse_from(["shopctl", "stock", "low", "--warehouse", "east", "--json"])
            .unwrap();
        assert!(cli.global.json);
        let Command::Stock(StockCommand::Low(args)) = cli.command else { panic!("not low") };
        assert_eq!(args.warehouse.as_deref(), Some("east"));
        assert!(Cli::try_parse_from(["shopctl", "stock", "low", "--page-size", "0"]).is_err());
        assert!(Cli::try_parse_from(["shopctl", "stock", "low", "MUG"]).is_err());
    }

    #[test]
    fn set_refuses_a_negative_on_hand_and_zero_timeout() {
        assert!(Cli::try_parse_from(["shopctl", "stock", "set", "MUG", "-1"]).is_err());
        assert!(Cli::try_parse_from(["shopctl", "--timeout-ms", "0", "stock", "list"]).is_err());
    }
}
