-- CommitReservation / CancelReservation in one database round trip (autocommit).
--
-- inventory.settle_hold(id, commit) locks the hold (FOR UPDATE: a hold leaves PENDING exactly
-- once, under its row lock), and when it is PENDING moves it on: to COMMITTED (on_hand and
-- reserved drop), or to CANCELLED (reserved drops), or, for a commit of a hold past its
-- expiry, to EXPIRED (a lapsed hold is never committed, even before the sweeper reaches it).
-- Lock order as everywhere: the reservation row, then its stock rows by ascending id. Every
-- change writes its movement row in the same statement.
--
-- Returns no row for an unknown id, else one row: the status found (o_was) and the status
-- set now (o_now; null when the hold was not PENDING and nothing changed).
create function inventory.settle_hold(p_id uuid, p_commit boolean)
returns table (o_was text, o_now text)
language plpgsql
volatile
as $$
declare
    v_status   text;
    v_lapsed   boolean;
    v_consumes integer;
    v_kind     text;
begin
    select r.status, r.expires_at <= now() into v_status, v_lapsed
      from inventory.reservations r
     where r.id = p_id
       for update;
    if not found then
        return;
    end if;
    o_was := v_status;
    if v_status <> 'PENDING' then
        o_now := null;
        return next;
        return;
    end if;

    if p_commit and not v_lapsed then
        o_now := 'COMMITTED'; v_kind := 'COMMIT'; v_consumes := 1;
    elsif p_commit then
        o_now := 'EXPIRED'; v_kind := 'EXPIRE'; v_consumes := 0;
    else
        o_now := 'CANCELLED'; v_kind := 'CANCEL'; v_consumes := 0;
    end if;

    perform 1
       from inventory.stock_levels sl
      where sl.id in (select ri.stock_level_id from inventory.reservation_items ri
                       where ri.reservation_id = p_id)
      order by sl.id
        for update;

    with ri as (
        select ri.stock_level_id, ri.quantity
          from inventory.reservation_items ri
         where ri.reservation_id = p_id
    ), u as (
        update inventory.stock_levels sl
           set on_hand = sl.on_hand - v_consumes * ri.quantity,
               reserved = sl.reserved - ri.quantity,
               updated_at = now()
          from ri
         where sl.id = ri.stock_level_id
    ), r as (
        update inventory.reservations set status = o_now, updated_at = now() where id = p_id
    )
    insert into inventory.movements (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
    select ri.stock_level_id, v_kind, -(v_consumes * ri.quantity), -ri.quantity, p_id from ri;

    return next;
end
$$;
