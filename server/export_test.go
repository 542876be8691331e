package server

// ValidateCreateRegistration is validateCreateRegistration, for the fuzz
// target in package server_test.
var ValidateCreateRegistration = validateCreateRegistration
