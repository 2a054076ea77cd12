//! Builders of the inventory requests that name a hold by its id or by its reference, so a
//! caller never spells the `oneof` by hand.
use crate::inventory::v1 as pb;

impl pb::ReservationReference {
    /// The reference a hold was taken under.
    pub fn new(reference_type: impl Into<String>, reference_id: impl Into<String>) -> Self {
        Self { reference_type: reference_type.into(), reference_id: reference_id.into() }
    }
}

macro_rules! names_a_hold {
    ($request:ident, $module:ident) => {
        impl pb::$request {
            /// Names the hold by its reservation id (the seed's field 1).
            pub fn by_id(reservation_id: impl Into<String>) -> Self {
                Self {
                    hold: Some(pb::$module::Hold::ReservationId(reservation_id.into())),
                    ..Default::default()
                }
            }

            /// Names the live hold of `(reference_type, reference_id)`.
            pub fn by_reference(
                reference_type: impl Into<String>,
                reference_id: impl Into<String>,
            ) -> Self {
                let reference = pb::ReservationReference::new(reference_type, reference_id);
                Self { hold: Some(pb::$module::Hold::Reference(reference)), ..Default::default() }
            }
        }
    };
}

names_a_hold!(CancelReservationRequest, cancel_reservation_request);
names_a_hold!(GetReservationRequest, get_reservation_request);
names_a_hold!(ReturnStockRequest, return_stock_request);

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::pb;

    /// The seed's CancelReservationRequest / GetReservationRequest, as old clients build them.
    #[derive(Clone, PartialEq, prost::Message)]
    struct SeedRequest {
        #[prost(string, tag = "1")]
        reservation_id: String,
    }

    #[test]
    fn old_and_new_clients_read_each_other() {
        let old = SeedRequest { reservation_id: "0190a5c2-7d4e-7c3a-9b1e-2f8a1c0d3e4f".into() };
        let bytes = old.encode_to_vec();
        let cancel = pb::CancelReservationRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(cancel, pb::CancelReservationRequest::by_id(old.reservation_id.clone()));
        let get = pb::GetReservationRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(get, pb::GetReservationRequest::by_id(old.reservation_id.clone()));
        // The id arm is field 1 on the wire, byte for byte.
        assert_eq!(cancel.encode_to_vec(), bytes);

        // An old server reading a request by reference sees no id: its usual refusal.
        let by_reference = pb::CancelReservationRequest::by_reference("ORDER", "o-1");
        let seen = SeedRequest::decode(by_reference.encode_to_vec().as_slice()).unwrap();
        assert_eq!(seen.reservation_id, "");
        // An old client's empty id arrives as no hold at all (proto3 sends no empty string).
        let empty = pb::CancelReservationRequest::decode(
            SeedRequest { reservation_id: String::new() }.encode_to_vec().as_slice(),
        )
        .unwrap();
        assert_eq!(empty.hold, None);
    }
}
