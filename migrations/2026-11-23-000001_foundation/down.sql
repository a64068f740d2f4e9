DROP TABLE pings;
DROP TABLE processed_jobs;
DROP TABLE workers;
DROP TABLE outbox;
