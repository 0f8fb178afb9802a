module quiver-render

go 1.19
