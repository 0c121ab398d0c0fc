PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE artifact_locations (
	artifact_id TEXT NOT NULL, 
	site TEXT NOT NULL, 
	uri TEXT NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (artifact_id, site, uri)
);
INSERT INTO artifact_locations VALUES('sha256:b9485148546419a0f6a85e8d708c923557c15d7f3c7d078ef1fa7f7c0f57d5a5','hpc','/tmp/s16/upgrade/h1/data/train.csv',6);
INSERT INTO artifact_locations VALUES('sha256:bce0b3488e3cc2bdcdabedbde5c2f7163424e574c2870cb743f6355b92075ed4','hpc','/tmp/s16/upgrade/h1/data/eval.json',7);
INSERT INTO artifact_locations VALUES('sha256:246ca6a096e3011ec12f7ac642e8bddef205fca6f4ae1e2e2d97bc73609e5d25','hpc','/tmp/s16/upgrade/h1/data/model.pkl',17);
INSERT INTO artifact_locations VALUES('sha256:a5673eaaedffe0c5f07033485aa6e20f61a88684f41d58147ad2e857ec7268fc','hpc','cmf://metrics/01a2273a-78b8-78e1-a6d0-5d6ed8220dbc/eval',18);
INSERT INTO artifact_locations VALUES('sha256:bce0b3488e3cc2bdcdabedbde5c2f7163424e574c2870cb743f6355b92075ed4','edge','/tmp/s16/upgrade/h1/data/eval.json',39);
INSERT INTO artifact_locations VALUES('sha256:63e34d87c6e0cde78b214d413643f311047c3228f97f5200d1b2088ad021308c','edge','/tmp/s16/upgrade/h1/data/model-edge.pkl',40);
INSERT INTO artifact_locations VALUES('sha256:f933d1aed81f26af34ea0a4b478400b5d025fa673ffc67878e92256eaaa832c3','edge','cmf://metrics/01a2273a-78fe-7483-abe1-b55250146302/eval',41);
CREATE TABLE artifacts (
	id TEXT NOT NULL, 
	type TEXT NOT NULL, 
	name TEXT NOT NULL, 
	uri TEXT NOT NULL, 
	site TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	properties TEXT NOT NULL, 
	custom_properties TEXT NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO artifacts VALUES('sha256:b9485148546419a0f6a85e8d708c923557c15d7f3c7d078ef1fa7f7c0f57d5a5','Dataset','train.csv','/tmp/s16/upgrade/h1/data/train.csv','hpc',1795954473.1443521976,'{"size_bytes":12}','{}',4);
INSERT INTO artifacts VALUES('sha256:bce0b3488e3cc2bdcdabedbde5c2f7163424e574c2870cb743f6355b92075ed4','Dataset','eval.json','/tmp/s16/upgrade/h1/data/eval.json','hpc',1795954473.1445527077,'{"size_bytes":12}','{}',5);
INSERT INTO artifacts VALUES('sha256:246ca6a096e3011ec12f7ac642e8bddef205fca6f4ae1e2e2d97bc73609e5d25','Model','model.pkl','/tmp/s16/upgrade/h1/data/model.pkl','hpc',1795954473.1453604697,'{"model_framework":"sklearn","size_bytes":14}','{}',14);
INSERT INTO artifacts VALUES('sha256:a5673eaaedffe0c5f07033485aa6e20f61a88684f41d58147ad2e857ec7268fc','Metrics','eval','cmf://metrics/01a2273a-78b8-78e1-a6d0-5d6ed8220dbc/eval','hpc',1795954473.1455142497,'{"values":{"auc":0.91,"f1":0.8}}','{}',15);
INSERT INTO artifacts VALUES('sha256:63e34d87c6e0cde78b214d413643f311047c3228f97f5200d1b2088ad021308c','Model','model-edge.pkl','/tmp/s16/upgrade/h1/data/model-edge.pkl','edge',1795954473.2153909206,'{"size_bytes":10}','{}',37);
INSERT INTO artifacts VALUES('sha256:f933d1aed81f26af34ea0a4b478400b5d025fa673ffc67878e92256eaaa832c3','Metrics','eval','cmf://metrics/01a2273a-78fe-7483-abe1-b55250146302/eval','edge',1795954473.2154624461,'{"values":{"auc":0.88}}','{}',38);
CREATE TABLE cmf_counter (
	name TEXT NOT NULL, 
	value BIGINT NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO cmf_counter VALUES('seq',49);
CREATE TABLE cmf_migrations (
	name TEXT NOT NULL, 
	applied_at FLOAT NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO cmf_migrations VALUES('0001_initial',1795954473.1407728195);
CREATE TABLE cmf_state (
	"key" TEXT NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE cmf_store (
	"key" TEXT NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO cmf_store VALUES('format','cmf-foundation');
INSERT INTO cmf_store VALUES('created_by_site','hpc');
CREATE TABLE conflicts (
	id TEXT NOT NULL, 
	kind TEXT NOT NULL, 
	record_id TEXT NOT NULL, 
	site TEXT NOT NULL, 
	detail TEXT NOT NULL, 
	detected_at FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE energy (
	execution_id TEXT NOT NULL, 
	site TEXT NOT NULL, 
	energy_kwh FLOAT NOT NULL, 
	co2e_kg FLOAT NOT NULL, 
	details TEXT NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (execution_id)
);
INSERT INTO energy VALUES('01a2273a-78b8-78e1-a6d0-5d6ed8220dbc','hpc',0.012000000000000000249,0.005000000000000000104,'{"method":"model","region":"DE"}',28);
CREATE TABLE events (
	artifact_id TEXT NOT NULL, 
	type TEXT NOT NULL, 
	execution_id TEXT NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (artifact_id, type, execution_id)
);
INSERT INTO events VALUES('sha256:b9485148546419a0f6a85e8d708c923557c15d7f3c7d078ef1fa7f7c0f57d5a5','INPUT','01a2273a-78b7-7bad-8e57-79c34bbd6df8',9);
INSERT INTO events VALUES('sha256:bce0b3488e3cc2bdcdabedbde5c2f7163424e574c2870cb743f6355b92075ed4','OUTPUT','01a2273a-78b7-7bad-8e57-79c34bbd6df8',10);
INSERT INTO events VALUES('sha256:bce0b3488e3cc2bdcdabedbde5c2f7163424e574c2870cb743f6355b92075ed4','INPUT','01a2273a-78b8-78e1-a6d0-5d6ed8220dbc',20);
INSERT INTO events VALUES('sha256:246ca6a096e3011ec12f7ac642e8bddef205fca6f4ae1e2e2d97bc73609e5d25','OUTPUT','01a2273a-78b8-78e1-a6d0-5d6ed8220dbc',21);
INSERT INTO events VALUES('sha256:a5673eaaedffe0c5f07033485aa6e20f61a88684f41d58147ad2e857ec7268fc','OUTPUT','01a2273a-78b8-78e1-a6d0-5d6ed8220dbc',22);
INSERT INTO events VALUES('sha256:bce0b3488e3cc2bdcdabedbde5c2f7163424e574c2870cb743f6355b92075ed4','INPUT','01a2273a-78fe-7483-abe1-b55250146302',46);
INSERT INTO events VALUES('sha256:63e34d87c6e0cde78b214d413643f311047c3228f97f5200d1b2088ad021308c','OUTPUT','01a2273a-78fe-7483-abe1-b55250146302',47);
INSERT INTO events VALUES('sha256:f933d1aed81f26af34ea0a4b478400b5d025fa673ffc67878e92256eaaa832c3','OUTPUT','01a2273a-78fe-7483-abe1-b55250146302',48);
CREATE TABLE executions (
	id TEXT NOT NULL, 
	pipeline_id TEXT NOT NULL, 
	stage_id TEXT NOT NULL, 
	pipeline TEXT NOT NULL, 
	stage TEXT NOT NULL, 
	site TEXT NOT NULL, 
	status TEXT NOT NULL, 
	status_rank INTEGER NOT NULL, 
	started_at FLOAT NOT NULL, 
	ended_at FLOAT, 
	params TEXT NOT NULL, 
	properties TEXT NOT NULL, 
	custom_properties TEXT NOT NULL, 
	error TEXT, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO executions VALUES('01a2273a-78b7-7bad-8e57-79c34bbd6df8','714ca40c-c777-5021-a2d1-1bf0a41f46ba','3ddb0dc3-aa61-5cab-8901-9fc0c8ee87e9','churn','prepare','hpc','completed',1,1795954473.1434583663,1795954473.1445758343,'{"split":0.2}','{}','{}',NULL,8);
INSERT INTO executions VALUES('01a2273a-78b8-78e1-a6d0-5d6ed8220dbc','714ca40c-c777-5021-a2d1-1bf0a41f46ba','546ada08-25f4-5a16-8d1f-40971124dd35','churn','train','hpc','completed',1,1795954473.1449661254,1795954473.1455481052,'{"lr":0.1,"nested":{"a":1}}','{}','{}',NULL,19);
INSERT INTO executions VALUES('01a2273a-78be-7a38-8b5b-5d69b03de0bc','714ca40c-c777-5021-a2d1-1bf0a41f46ba','94873b39-885f-5a48-9821-89fc4cab58bf','churn','evaluate','hpc','failed',1,1795954473.150141716,1795954473.1503903865,'{}','{}','{}','RuntimeError: boom',31);
INSERT INTO executions VALUES('01a2273a-78fe-7483-abe1-b55250146302','714ca40c-c777-5021-a2d1-1bf0a41f46ba','546ada08-25f4-5a16-8d1f-40971124dd35','churn','train','edge','completed',1,1795954473.2144560813,1795954473.2154874802,'{"lr":0.05}','{}','{}',NULL,45);
CREATE TABLE metrics (
	execution_id TEXT NOT NULL, 
	name TEXT NOT NULL, 
	step BIGINT NOT NULL, 
	value FLOAT NOT NULL, 
	timestamp FLOAT NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (execution_id, name, step)
);
INSERT INTO metrics VALUES('01a2273a-78b8-78e1-a6d0-5d6ed8220dbc','loss.loss',0,1.0,1795954473.1454410552,23);
INSERT INTO metrics VALUES('01a2273a-78b8-78e1-a6d0-5d6ed8220dbc','loss.loss',1,0.5,1795954473.1454575062,24);
INSERT INTO metrics VALUES('01a2273a-78b8-78e1-a6d0-5d6ed8220dbc','loss.loss',2,0.33333333333333331482,1795954473.145468235,25);
INSERT INTO metrics VALUES('01a2273a-78b8-78e1-a6d0-5d6ed8220dbc','auc',-1,0.91000000000000003108,1795954473.1454806327,26);
INSERT INTO metrics VALUES('01a2273a-78b8-78e1-a6d0-5d6ed8220dbc','f1',-1,0.8000000000000000444,1795954473.1454856396,27);
INSERT INTO metrics VALUES('01a2273a-78fe-7483-abe1-b55250146302','auc',-1,0.88000000000000000444,1795954473.2154242991,49);
CREATE TABLE ol_events (
	id TEXT NOT NULL, 
	run_id TEXT, 
	event_type TEXT, 
	event_time TEXT, 
	body TEXT NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO ol_events VALUES('c0bee7ce9b5c196426655941c116f9acd0eaa565f36a3f3e6bfb35256c1390de','67aff81e-a24a-41a9-aac1-6641086299cb','START','2026-11-20T10:00:00+00:00','{"eventTime":"2026-11-20T10:00:00+00:00","eventType":"START","inputs":[{"name":"events.parquet","namespace":"s3://raw"}],"job":{"name":"etl.clean","namespace":"spark"},"outputs":[{"name":"events.parquet","namespace":"s3://clean"}],"producer":"https://example.org/spark","run":{"runId":"67aff81e-a24a-41a9-aac1-6641086299cb"},"schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}',32);
INSERT INTO ol_events VALUES('367fddde09bc18863a0fc19b5cefb949405dbcff7e058bced174edb9c6ca8967','67aff81e-a24a-41a9-aac1-6641086299cb','COMPLETE','2026-11-20T10:05:00.123+01:00','{"eventTime":"2026-11-20T10:05:00.123+01:00","eventType":"COMPLETE","inputs":[{"name":"events.parquet","namespace":"s3://raw"}],"job":{"name":"etl.clean","namespace":"spark"},"outputs":[{"name":"events.parquet","namespace":"s3://clean"}],"producer":"https://example.org/spark","run":{"runId":"67aff81e-a24a-41a9-aac1-6641086299cb"},"schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}',33);
CREATE TABLE pipelines (
	id TEXT NOT NULL, 
	name TEXT NOT NULL, 
	site TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	properties TEXT NOT NULL, 
	custom_properties TEXT NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
INSERT INTO pipelines VALUES('714ca40c-c777-5021-a2d1-1bf0a41f46ba','churn','hpc',1795954473.1429343223,'{}','{}',1);
CREATE TABLE stages (
	id TEXT NOT NULL, 
	pipeline_id TEXT NOT NULL, 
	pipeline TEXT NOT NULL, 
	name TEXT NOT NULL, 
	site TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	properties TEXT NOT NULL, 
	custom_properties TEXT NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO stages VALUES('3ddb0dc3-aa61-5cab-8901-9fc0c8ee87e9','714ca40c-c777-5021-a2d1-1bf0a41f46ba','churn','prepare','hpc',1795954473.1434061527,'{}','{}',2);
INSERT INTO stages VALUES('546ada08-25f4-5a16-8d1f-40971124dd35','714ca40c-c777-5021-a2d1-1bf0a41f46ba','churn','train','hpc',1795954473.1449437141,'{}','{}',11);
INSERT INTO stages VALUES('94873b39-885f-5a48-9821-89fc4cab58bf','714ca40c-c777-5021-a2d1-1bf0a41f46ba','churn','evaluate','hpc',1795954473.1500957011,'{}','{}',29);
CREATE INDEX ix_artifact_locations_seq ON artifact_locations (seq);
CREATE INDEX ix_artifacts_name ON artifacts (name);
CREATE INDEX ix_artifacts_seq ON artifacts (seq);
CREATE INDEX ix_artifacts_type_name ON artifacts (type, name);
CREATE INDEX ix_energy_seq ON energy (seq);
CREATE INDEX ix_events_execution ON events (execution_id, type, artifact_id);
CREATE INDEX ix_events_seq ON events (seq);
CREATE INDEX ix_executions_pipeline ON executions (pipeline_id, started_at);
CREATE INDEX ix_executions_seq ON executions (seq);
CREATE INDEX ix_executions_site ON executions (site);
CREATE INDEX ix_executions_stage ON executions (stage_id, started_at);
CREATE INDEX ix_executions_started ON executions (started_at);
CREATE INDEX ix_metrics_seq ON metrics (seq);
CREATE INDEX ix_ol_events_run ON ol_events (run_id);
CREATE INDEX ix_ol_events_seq ON ol_events (seq);
CREATE INDEX ix_pipelines_seq ON pipelines (seq);
CREATE INDEX ix_stages_pipeline ON stages (pipeline_id, name);
CREATE INDEX ix_stages_seq ON stages (seq);
COMMIT;
