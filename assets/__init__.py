"""The data files of gfdt-dash (shipped score models, the dashboard's logo), installed as the
package ``gfdt_dash.assets``; read them through :mod:`gfdt_dash.resources`."""
