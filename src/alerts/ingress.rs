//! Alert ingress: the bodies `POST /alerts` accepts.
