// Package conformance is the behavioural specification of storage.Store,
// run against every backend.
//
// RunTests checks each method, each sentinel error, the all-or-nothing
// guarantee of every write, and that concurrent writers of one row
// serialize; RunLifecycleTests checks key schedules with a settable clock;
// RunSharedDatabaseTests runs several stores on one database at once, as
// replicas of the service do. A backend's test file only supplies a
// constructor of fresh, empty stores (or databases). The suite uses fake key material: storage treats keys as
// opaque bytes.
package conformance
