-- +goose Up
-- The Docker engine a job ran on, named as in KOZMIC_ENGINES; '' for a job
-- that never reached one, for a job of a Kozmic with only the engine of
-- DOCKER_HOST (nothing to tell), and for every job before engines had names.
ALTER TABLE jobs ADD COLUMN engine TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE jobs DROP COLUMN engine;
