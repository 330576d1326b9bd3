-- Run once by the postgres image on an empty volume: MLflow's tracking store beside leadradar's tables.
CREATE DATABASE mlflow OWNER leadradar;
