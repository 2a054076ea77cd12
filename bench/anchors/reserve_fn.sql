-- Server-side functions for the one-round-trip anchors (A_fn, B_fn, B2_fn, O_order_min).

-- reserve(id, skus, quantities): all-or-nothing hold in one call. Rows are locked in SKU
-- order (no deadlock between two holds); the guarded UPDATE is the reservation (no oversell
-- whatever the concurrency) and a short SKU aborts the whole transaction.
CREATE OR REPLACE FUNCTION reserve(p_rid uuid, p_skus text[], p_qtys int[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  i int;
BEGIN
  FOR i IN SELECT t.ord FROM unnest(p_skus) WITH ORDINALITY AS t(sku, ord) ORDER BY t.sku LOOP
    UPDATE inventory_items SET reserved = reserved + p_qtys[i]
     WHERE sku = p_skus[i] AND on_hand - reserved >= p_qtys[i];
    IF NOT FOUND THEN
      RAISE EXCEPTION 'insufficient stock for %', p_skus[i] USING ERRCODE = 'P0001';
    END IF;
  END LOOP;
  INSERT INTO reservations (reservation_id) VALUES (p_rid);
  INSERT INTO reservation_items (reservation_id, sku, qty)
  SELECT p_rid, u.s, u.q FROM unnest(p_skus, p_qtys) AS u(s, q);
END $$;

-- commit_reservation(id): a held hold's units leave stock (on_hand and reserved both drop),
-- in one call; stock rows in SKU order, like reserve().
CREATE OR REPLACE FUNCTION commit_reservation(p_rid uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM reservations WHERE reservation_id = p_rid AND status = 'HELD' FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no held reservation %', p_rid USING ERRCODE = 'P0002';
  END IF;
  UPDATE inventory_items i SET on_hand = i.on_hand - ri.qty, reserved = i.reserved - ri.qty
    FROM (SELECT sku, qty FROM reservation_items WHERE reservation_id = p_rid ORDER BY sku) ri
   WHERE i.sku = ri.sku;
  UPDATE reservations SET status = 'COMMITTED' WHERE reservation_id = p_rid;
END $$;
