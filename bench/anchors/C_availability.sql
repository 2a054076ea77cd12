-- (C) check's work: availability of 3 random SKUs (repeats allowed), one SELECT by the
-- unique index, autocommit (no write).
\set nskus 10000
\set s1 random(1, :nskus)
\set s2 random(1, :nskus)
\set s3 random(1, :nskus)
SELECT sku, on_hand - reserved AS available FROM inventory_items
 WHERE sku IN ('SKU-' || lpad(:s1::text, 6, '0'), 'SKU-' || lpad(:s2::text, 6, '0'), 'SKU-' || lpad(:s3::text, 6, '0'));
