package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the writer's statements prepared, because parsing SQL is
// a third of the cost of a small write transaction. A statement cannot be
// prepared while a transaction holds the writer's only connection, so a
// query first seen inside one runs unprepared and is queued; writeTx
// prepares the queue once the connection is free again. On the reader
// pool, which has no such transaction, a read prepares its statement at
// once (prepared).
type stmtCache struct {
	pool *sql.DB

	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	queued map[string]bool
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, stmts: map[string]*sql.Stmt{}, queued: map[string]bool{}}
}

// get returns the prepared statement for query, or nil after queueing it.
func (c *stmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stmts[query]
	if s == nil {
		c.queued[query] = true
	}
	return s
}

// prepared returns the prepared statement for query, preparing it first
// if need be. Preparing takes a connection of the pool: it is only for a
// pool none of whose connections the caller holds (the reader pool).
func (c *stmtCache) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	s := c.stmts[query]
	c.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.stmts[query]; prev != nil {
		s.Close() // prepared meanwhile by another caller
		return prev, nil
	}
	c.stmts[query] = s
	return s, nil
}

// prepareQueued prepares the queued queries. It must not run inside a
// transaction on the pool. A query that fails to prepare is dropped: it
// keeps running unprepared and reports its own error there.
func (c *stmtCache) prepareQueued(ctx context.Context) {
	c.mu.Lock()
	queued := c.queued
	c.queued = map[string]bool{}
	c.mu.Unlock()
	for q := range queued {
		s, err := c.pool.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.stmts[q] == nil {
			c.stmts[q] = s
		} else {
			s.Close()
		}
		c.mu.Unlock()
	}
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.stmts {
		s.Close()
		delete(c.stmts, q)
	}
}

// txn is a transaction that runs cached statements where it has them. Read
// transactions have no cache.
type txn struct {
	*sql.Tx
	cache *stmtCache
}

func (t txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := t.cache.get(query); s != nil {
		return t.Tx.StmtContext(ctx, s).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := t.cache.get(query); s != nil {
		return t.Tx.StmtContext(ctx, s).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := t.cache.get(query); s != nil {
		return t.Tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}
