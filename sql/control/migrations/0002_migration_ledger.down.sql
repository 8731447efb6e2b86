DROP TABLE migration_results;
DROP TABLE migration_runs;
