package platform

// Waiting returns how many callers wait on the fetch of uri in flight, so
// that a test can start a fetch's release once every caller it started
// waits on it.
func Waiting(c *KeySetCache, uri string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.sets[uri]; ok && e.call != nil {
		return e.call.waiters
	}
	return 0
}
