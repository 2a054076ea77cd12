-- The anchors' scratch tables, recreated on every run.sh: a stock table with the service's
-- guard (never negative, never more reserved than on hand), holds with their lines, and
-- orders with their lines for O_order_min. 10,000 SKUs named like the bench's
-- (SKU-000001 ..), a million units each so no anchor hold is ever short.
DROP TABLE IF EXISTS order_lines;
DROP TABLE IF EXISTS orders;
DROP TABLE IF EXISTS reservation_items;
DROP TABLE IF EXISTS reservations;
DROP TABLE IF EXISTS inventory_items;

CREATE TABLE inventory_items (
  id        bigserial PRIMARY KEY,
  sku       text UNIQUE NOT NULL,
  on_hand   int NOT NULL,
  reserved  int NOT NULL DEFAULT 0,
  CHECK (reserved >= 0),
  CHECK (reserved <= on_hand)
);
INSERT INTO inventory_items (sku, on_hand, reserved)
SELECT 'SKU-' || lpad(g::text, 6, '0'), 1000000, 0
  FROM generate_series(1, 10000) g;

CREATE TABLE reservations (
  reservation_id  uuid PRIMARY KEY,
  status          text NOT NULL DEFAULT 'HELD',
  expires_at      timestamptz NOT NULL DEFAULT now() + interval '15 minutes',
  created_at      timestamptz NOT NULL DEFAULT now()
);
-- What an expiry sweeper would scan: only live holds.
CREATE INDEX reservations_held_expiry ON reservations (expires_at) WHERE status = 'HELD';

CREATE TABLE reservation_items (
  reservation_id  uuid NOT NULL REFERENCES reservations (reservation_id),
  sku             text NOT NULL,
  qty             int NOT NULL CHECK (qty > 0),
  PRIMARY KEY (reservation_id, sku)
);

-- Orders for O_order_min: the least an order has to write durably.
CREATE TABLE orders (
  id              uuid PRIMARY KEY,
  user_id         text NOT NULL,
  status          text NOT NULL,
  total_minor     bigint NOT NULL,
  reservation_id  uuid,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
-- ListOrders by user, newest first.
CREATE INDEX orders_user ON orders (user_id, created_at DESC);

CREATE TABLE order_lines (
  order_id  uuid NOT NULL REFERENCES orders (id),
  sku       text NOT NULL,
  qty       int NOT NULL,
  PRIMARY KEY (order_id, sku)
);

VACUUM ANALYZE;
