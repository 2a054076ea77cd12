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
