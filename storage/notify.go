package storage

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// pgStore is the PostgreSQL backend: the GORM store, whose writes also
// pg_notify ChangesChannel, plus a listener for those notifications.
type pgStore struct {
	*gormStore
	url string
	log *slog.Logger
}

var _ Notifier = (*pgStore)(nil)

// Timing of the listener connection. A connection that has heard nothing
// for listenIdle is pinged, so one silently cut (no RST) is noticed within
// listenIdle+listenPing; reconnection backs off from listenRetryMin to
// listenRetryMax.
const (
	listenIdle     = 15 * time.Second
	listenPing     = 5 * time.Second
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 2 * time.Second
)

// Listen implements Notifier with a dedicated pgx connection (outside the
// pool) that runs LISTEN ltikeys_changes.
func (s *pgStore) Listen(ctx context.Context, changed func()) {
	log := s.log.With("component", "storage-listener")
	retry := listenRetryMin
	failing := false
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, func() {
			if failing {
				log.InfoContext(ctx, "change notifications restored")
				failing = false
			}
			retry = listenRetryMin
			changed()
		}, changed)
		if ctx.Err() != nil {
			return
		}
		if !failing {
			log.WarnContext(ctx, "change notification connection lost; reconnecting (changes are still picked up by polling)", "err", safe(err))
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, listenRetryMax)
	}
}

// listenOnce connects, listens, calls connected once the LISTEN is in
// place and changed for every notification, and returns the error that
// ended the connection.
func (s *pgStore) listenOnce(ctx context.Context, connected, changed func()) error {
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		return err
	}
	// Cancel a wait by a read deadline rather than a cancel request: an
	// idle wait that times out leaves the connection usable for a ping.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > listenPing {
		cfg.ConnectTimeout = listenPing
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ChangesChannel}.Sanitize()); err != nil {
		return err
	}
	connected()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenIdle)
		err := conn.PgConn().WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			changed()
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !pgconn.Timeout(err):
			return err
		}
		pingCtx, cancel := context.WithTimeout(ctx, listenPing)
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return err
		}
	}
}
