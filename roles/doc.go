// Package roles runs what a hanode server does while its group's leader: the
// active duty (ACTIVE_CMD, supervised by Supervisor, or by the duty guard
// process through Guard, under the lease deadline), FENCE_CMD before a new
// leader's duty starts (Fence), and the containment that keeps every process
// a command starts together so that ending the command ends all of them
// (Jailer).
//
// The catalog of roles a server may be given (ROLE: primary, monitor, ...)
// is package roles/catalog, which configuration reads without this package.
package roles
